using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// A registry node in a child process (<c>dotnet onex-registry.dll ...</c> from this build's output), on
/// OS-chosen loopback endpoints, so a measurement of it is not mixed with the measuring process. Stopped by pid:
/// SIGTERM, then a kill after 10 s.
/// </summary>
internal sealed class RegistryNodeProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _errors;

    private RegistryNodeProcess(Process process, StringBuilder errors, string routerEndpoint, string pubEndpoint, string? httpEndpoint)
    {
        _process = process;
        _errors = errors;
        RouterEndpoint = routerEndpoint;
        PubEndpoint = pubEndpoint;
        HttpEndpoint = httpEndpoint;
    }

    public int Id => _process.Id;

    public string RouterEndpoint { get; }

    public string PubEndpoint { get; }

    /// <summary>The HTTP endpoint's URL when the arguments turned it on (<c>--http</c> other than <c>none</c>).</summary>
    public string? HttpEndpoint { get; }

    /// <summary>The node's dll beside this program (the benchmark project references the node).</summary>
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "onex-registry.dll");

    /// <summary>
    /// Starts a node with <paramref name="arguments"/> after the loopback endpoints and returns once it prints its
    /// endpoints. A node that exits first (or prints anything else first) is a <see cref="RegistryNodeStartException"/>
    /// carrying its exit code and stderr, so a caller can tell a rejected command line from a crash.
    /// <paramref name="environment"/>: variables added to the node's (settings without an option, e.g. <c>Registry__ClusterBucket</c>).
    /// </summary>
    public static RegistryNodeProcess Start(IEnumerable<string> arguments, string? dll = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var list = arguments.ToList();
        try
        {
            return Start(WithHttp(list), dll, environment);
        }
        catch (RegistryNodeStartException ex) when (!list.Contains("--http") && ex.IsUsageError && ex.Errors.Contains("--http", StringComparison.Ordinal))
        {
            // A node from before the HTTP endpoint (a --compare-node build) has none to turn off.
            return Start(list, dll, environment);
        }
    }

    private static RegistryNodeProcess Start(List<string> arguments, string? dll, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        foreach (var arg in new[] { dll ?? Dll, "--endpoint", "tcp://127.0.0.1:0", "--pub-endpoint", "tcp://127.0.0.1:0" }.Concat(arguments))
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the registry node.");
        var errors = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) lock (errors) errors.AppendLine(e.Data);
        };
        process.BeginErrorReadLine();

        // The node prints its endpoints on stdout once it serves (router, then pub); anything else first is a failure.
        var router = ReadLine(process, "registry: router ");
        var pub = router is null ? null : ReadLine(process, "registry: pub ");
        var wantsHttp = arguments.SkipWhile(a => a != "--http").Skip(1).FirstOrDefault() is { } http && http != "none";
        var httpUrl = pub is not null && wantsHttp ? ReadLine(process, "registry: http ") : null;
        if (router is null || pub is null || (wantsHttp && httpUrl is null))
        {
            // A refused command line prints help on stdout and exits at once: give it time to, so its exit code is its own.
            if (!process.WaitForExit(TimeSpan.FromSeconds(5))) Stop(process);
            int? exitCode = process.HasExited ? process.ExitCode : null;
            process.WaitForExit(); // drains stderr
            string text;
            lock (errors) text = errors.ToString().Trim();
            process.Dispose();
            throw new RegistryNodeStartException(exitCode, text);
        }
        return new RegistryNodeProcess(process, errors, router, pub, httpUrl);
    }

    // No HTTP endpoint unless the caller names one: the default (port 5752) would collide between parallel runs.
    private static List<string> WithHttp(List<string> arguments) => arguments.Contains("--http") ? arguments : [.. arguments, "--http", "none"];

    /// <summary>What the node wrote to stderr so far.</summary>
    public string Errors
    {
        get { lock (_errors) return _errors.ToString(); }
    }

    public void Dispose()
    {
        Stop(_process);
        _process.Dispose();
    }

    private static string? ReadLine(Process process, string prefix)
    {
        var readLine = process.StandardOutput.ReadLineAsync();
        if (!readLine.Wait(StartTimeout) || readLine.Result is not { } line || !line.StartsWith(prefix, StringComparison.Ordinal))
            return null;
        return line[prefix.Length..];
    }

    private static void Stop(Process process)
    {
        if (process.HasExited) return;
        _ = Kill(process.Id, 15);
        if (!process.WaitForExit(TimeSpan.FromSeconds(10))) process.Kill();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}

/// <summary>The registry node exited (or printed something unexpected) before serving.</summary>
internal sealed class RegistryNodeStartException(int? exitCode, string errors)
    : Exception($"The registry node did not start (exit code {exitCode?.ToString() ?? "none"}): {errors}")
{
    /// <summary>The node's exit code, or null when it was still running and had to be stopped.</summary>
    public int? ExitCode { get; } = exitCode;

    /// <summary>What the node wrote to stderr.</summary>
    public string Errors { get; } = errors;

    /// <summary>
    /// True when the node refused its command line (System.CommandLine's parse errors, or the node's own
    /// <c>registry: --option: ...</c> messages, exit codes 1 and 2) rather than crashing while starting.
    /// </summary>
    public bool IsUsageError =>
        ExitCode is 1 or 2 &&
        (Errors.Contains("Unrecognized command or argument", StringComparison.Ordinal) ||
         Errors.Contains("registry: --", StringComparison.Ordinal) ||
         Errors.Contains("Usage:", StringComparison.Ordinal));
}
