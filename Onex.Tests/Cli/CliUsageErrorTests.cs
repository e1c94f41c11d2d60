using System.Diagnostics;
using System.Text.Json;
using Onex.Cli;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Cli;

/// <summary>
/// Bad invocations of the real <c>onex</c> executable (child processes): each must exit 2 with one line on stderr
/// that says what is wrong, and never a stack trace or a CLR type name. None of them reaches a registry.
/// </summary>
public class CliUsageErrorTests
{
    private static readonly TimeSpan ChildLimit = TimeSpan.FromSeconds(60);

    /// <summary>An invocation, the environment it runs with (null removes a variable), and a word its line must contain.</summary>
    private sealed record BadInvocation(string[] Args, string MustMention, Dictionary<string, string?>? Environment = null)
    {
        public override string ToString() =>
            (Environment is null ? "" : string.Join(' ', Environment.Select(e => $"{e.Key}={e.Value}")) + " ") + "onex " + string.Join(' ', Args);
    }

    private const string ZmqEndpoints = "tcp://127.0.0.1:1,tcp://127.0.0.1:2";

    private static readonly BadInvocation[] Invocations =
    [
        new(["ports", "lease", "--count", "abc"], "--count"),
        new(["ports", "lease", "--count", "0"], "--count"),
        new(["ports", "lease", "--count", "-3"], "--count"),
        new(["ports", "lease"], "--count"),
        new(["ports", "lease", "--count"], "--count"),
        new(["ports", "lease", "--count", "1", "--ttl", "x"], "--ttl"),
        new(["ports", "lease", "--count", "1", "--ttl", "-5s"], "--ttl"),
        new(["ports", "lease", "--count", "1", "--until-pid", "abc"], "--until-pid"),
        new(["ports", "lease", "--count", "1", "--until-pid", "2147483646"], "--until-pid"),
        new(["ports", "lease", "--count", "1", "--until-pid", "1", "--until-signal"], "--until-signal"),
        new(["ports", "stress", "--processes", "2", "--ports", "1", "--hold", "2h"], "--hold"),
        new(["ports", "stress", "--processes", "abc", "--ports", "1"], "--processes"),
        new(["ports", "stress", "--processes", "1", "--ports", "1"], "--processes"),
        new(["ports", "stress", "--processes", "2", "--ports", "1", "--rounds", "1000"], "--rounds"),
        new(["bench", "bus", "--backend", "memory", "--count", "abc"], "--count"),
        new(["bench", "bus", "--count", "abc"], "--count"),
        new(["bench", "bus", "--backend", "kafka"], "kafka"),
        new(["bench", "bus", "--backend", "memory", "--size", "0"], "--size"),
        new(["bench", "bus", "--backend", "memory", "--rounds", "x"], "--rounds"),
        new(["bus", "publish", "--backend", "kafka", "--topic", "a.b"], "kafka"),
        new(["bus", "publish", "--backend", "zmq", "--endpoints", ZmqEndpoints, "--topic", "bad..topic"], "bad..topic"),
        new(["bus", "publish", "--backend", "zmq", "--endpoints", ZmqEndpoints, "--topic", "a.*"], "a.*"),
        new(["bus", "subscribe", "--backend", "zmq", "--endpoints", ZmqEndpoints, "--pattern", "a.>.b"], "a.>.b"),
        new(["bus", "publish", "--backend", "zmq", "--endpoints", "garbage", "--topic", "a.b"], "garbage"),
        new(["bus", "publish", "--backend", "ipc", "--endpoints", "garbage", "--topic", "a.b"], "garbage"),
        new(["bus", "publish", "--backend", "jetstream", "--endpoints", "http://x", "--topic", "a.b"], "nats://"),
        new(["bus", "publish", "--topic", "a.b"], "memory", new() { ["ONEX_BUS"] = null }),
        new(["bus", "subscribe", "--pattern", "a.>"], "memory", new() { ["ONEX_BUS"] = null }),
        new(["bus", "publish", "--topic", "a.b"], "ONEX_BUS", new() { ["ONEX_BUS"] = "kafka" }),
        new(["bus", "publish", "--backend", "zmq", "--endpoints", ZmqEndpoints, "--topic", "a.b", "--count", "many"], "--count"),
        new(["bus", "host", "--backend", "memory", "--endpoints", "x"], "--endpoints"),
        new(["describe", "--registry", "garbage"], "garbage"),
        new(["describe", "--registry", "http://127.0.0.1:5750"], "http://"),
        new(["describe"], "ONEX_REGISTRY_ENDPOINT", new() { ["ONEX_REGISTRY_ENDPOINT"] = "127.0.0.1:5750" }),
        new(["watch", "--registry-pub", "garbage"], "--registry-pub"),
        new(["describe", "--timeout", "x"], "--timeout"),
        new(["describe", "--bogus"], "--bogus"),
        new(["describe", "--jsn"], "--json"),
        new(["describe", "extra"], "extra"),
        new(["portz"], "portz"),
        new(["ports"], "lease"),
        new(["ports", "release"], "ID"),
        new(["tools", "validate"], "NAME"),
        new(["tools", "show"], "NAME"),
        new(["tools", "register", "no-such-tool-contract.json"], "cannot read"),
        new(["tools", "register"], "FILE"),
        new(["registry", "serve", "--endpoint", "garbage"], "--endpoint"),
        new(["registry", "serve", "--pub-endpoint", "tcp://127.0.0.1:notaport"], "--pub-endpoint"),
        new(["registry", "serve", "--default-ttl", "30ms"], "--default-ttl"),
        new(["registry", "serve", "--min-ttl", "10s", "--max-ttl", "5s"], "--min-ttl"),
        new(["registry", "serve", "--bogus"], "--bogus"),
        new(["registry", "serve", "--log-level", "loud"], "--log-level"),
        new(["registry", "serve", "--port-range", "5-x"], "--port-range"),
        new(["registry", "serve", "--store", "floppy"], "--store"),
        new(["registry", "serve", "--durability", "maybe"], "--durability"),
        new(["registry", "serve", "--heartbeat-interval", "often"], "--heartbeat-interval"),
        new(["--registry", "tcp://127.0.0.1:1", "registry", "serve", "--endpoint", "tcp://127.0.0.1:2"], "--endpoint"),
    ];

    [Test]
    public async Task Every_bad_invocation_exits_2_with_one_line_and_no_stack_trace()
    {
        Assert.That(Invocations, Has.Length.GreaterThanOrEqualTo(40));
        var results = new (BadInvocation Invocation, ChildResult Result)[Invocations.Length];
        // Two at a time: each is a short-lived runtime start, and the machine is shared.
        await Parallel.ForEachAsync(Enumerable.Range(0, Invocations.Length), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (i, _) =>
            results[i] = (Invocations[i], await RunAsync(Invocations[i].Args, Invocations[i].Environment)));

        Assert.Multiple(() =>
        {
            foreach (var (invocation, result) in results)
            {
                var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), $"{invocation}: {result}");
                Assert.That(lines, Has.Length.EqualTo(1), $"{invocation}: stderr is not one line: {result}");
                Assert.That(result.Error, Does.Not.Contain("   at ").And.Not.Contain("Exception").And.Not.Contain("System."),
                    $"{invocation}: a stack trace or CLR name: {result}");
                Assert.That(result.Error, Does.StartWith("onex: ").Or.StartWith("registry: "), $"{invocation}: {result}");
                Assert.That(result.Error, Does.Contain(invocation.MustMention), $"{invocation}: the line does not name what is wrong: {result}");
                Assert.That(result.Output, Is.Empty, $"{invocation}: printed on stdout: {result}");
            }
        });
    }

    [Test]
    public async Task With_json_a_usage_error_is_one_json_object_on_stderr()
    {
        var result = await RunAsync(["ports", "lease", "--count", "abc", "--json"], null);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
        Assert.That(result.Output, Is.Empty, result.ToString());
        using var json = JsonDocument.Parse(result.Error);
        var error = json.RootElement.GetProperty("error");
        Assert.That(error.GetProperty("exitCode").GetInt32(), Is.EqualTo(ExitCodes.Usage));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("USAGE"));
        Assert.That(error.GetProperty("message").GetString(), Does.Contain("--count"));
    }

    internal sealed record ChildResult(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}; stdout: [{Output}]; stderr: [{Error}]";
    }

    /// <summary>Runs <c>dotnet onex.dll ARGS</c> with stdin at end of input and waits (bounded) for it to exit.</summary>
    internal static async Task<ChildResult> RunAsync(string[] args, Dictionary<string, string?>? environment)
    {
        var start = OnexProcess.StartInfo(args);
        foreach (var (name, value) in environment ?? [])
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start onex");
        try
        {
            process.StandardInput.Close();
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().Within($"onex {string.Join(' ', args)} to exit", ChildLimit);
            return new ChildResult(process.ExitCode, (await output).Trim(), (await error).Trim());
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}

public class CliUnexpectedFailureTests
{
    [Test]
    public async Task An_unexpected_failure_prints_one_line_naming_a_log_file_that_holds_the_details()
    {
        var error = new StringWriter();
        var context = new CliContext(new StringWriter(), error, TextReader.Null);
        var guarded = OnexCli.Guard(context, (_, _) => throw new InvalidOperationException("something nobody planned for"));

        var exit = await guarded(new System.CommandLine.RootCommand().Parse([]), CancellationToken.None);

        var line = error.ToString().TrimEnd();
        Assert.That(exit, Is.EqualTo(ExitCodes.Internal));
        Assert.That(line.Split('\n'), Has.Length.EqualTo(1), line);
        Assert.That(line, Does.StartWith("onex: unexpected failure: something nobody planned for; details in ").And.Not.Contain("   at "));
        var path = line[(line.LastIndexOf(" in ", StringComparison.Ordinal) + 4)..];
        try
        {
            Assert.That(File.ReadAllText(path), Does.Contain("InvalidOperationException").And.Contain("   at "), "the log file lacks the stack trace");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
