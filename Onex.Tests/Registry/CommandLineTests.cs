using Onex.Tests.Infrastructure;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;

namespace Onex.Tests.Registry;

public class CommandLineTests
{
    private static RegistryNodeOptions Parse(string[] args, Dictionary<string, string>? environment = null)
    {
        RegistryNodeOptions? options = null;
        var command = RegistryNodeCommandLine.CreateCommand((parse, _) =>
        {
            options = RegistryNodeCommandLine.BuildOptions(parse, name => environment?.GetValueOrDefault(name));
            return Task.FromResult(0);
        });
        var exit = command.Parse(args).Invoke();
        Assert.That(exit, Is.Zero, $"parsing {string.Join(' ', args)} failed");
        return options!;
    }

    [Test]
    public void Without_options_or_environment_the_well_known_endpoints_are_used()
    {
        var options = Parse([]);
        Assert.That((options.Endpoint, options.PubEndpoint), Is.EqualTo(("tcp://127.0.0.1:5750", "tcp://127.0.0.1:5751")));
    }

    [Test]
    public void Environment_variables_set_the_endpoints()
    {
        var options = Parse([], new() { ["ONEX_REGISTRY_ENDPOINT"] = "tcp://127.0.0.1:6000", ["ONEX_REGISTRY_PUB_ENDPOINT"] = "tcp://127.0.0.1:6001" });
        Assert.That((options.Endpoint, options.PubEndpoint), Is.EqualTo(("tcp://127.0.0.1:6000", "tcp://127.0.0.1:6001")));
    }

    [Test]
    public void Options_beat_environment_variables()
    {
        var options = Parse(["--endpoint", "tcp://127.0.0.1:7000"], new() { ["ONEX_REGISTRY_ENDPOINT"] = "tcp://127.0.0.1:6000" });
        Assert.That(options.Endpoint, Is.EqualTo("tcp://127.0.0.1:7000"));
    }

    [Test]
    public void Lease_and_timing_options_are_read_with_units()
    {
        var options = Parse(["--port-range", "21000-21099", "--default-ttl", "10s", "--min-ttl", "500ms", "--max-ttl", "2m",
            "--quarantine", "5s", "--heartbeat-interval", "250ms", "--grace-period", "1m", "--host", "10.0.0.5"]);
        Assert.That(options.Leases.PortRange, Is.EqualTo(new PortRange(21000, 21099)));
        Assert.That((options.Leases.DefaultTtl, options.Leases.MinTtl, options.Leases.MaxTtl, options.Leases.Quarantine),
            Is.EqualTo((TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(500), TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(5))));
        Assert.That((options.HeartbeatInterval, options.Nodes.UnhealthyGracePeriod), Is.EqualTo((TimeSpan.FromMilliseconds(250), TimeSpan.FromMinutes(1))));
        Assert.That(options.Leases.AdvertisedHost, Is.EqualTo("10.0.0.5"));
    }

    [Test]
    public async Task A_bad_duration_exits_with_a_usage_error_naming_the_option()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await RegistryNodeCommandLine.RunAsync(["--default-ttl", "soon"], output, error, _ => null, CancellationToken.None);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error.ToString(), Does.Contain("--default-ttl"));
    }

    [Test]
    public async Task Help_lists_the_options_and_exits_zero()
    {
        var output = new StringWriter();
        var exit = await RegistryNodeCommandLine.RunAsync(["--help"], output, new StringWriter(), _ => null, CancellationToken.None);
        Assert.That(exit, Is.Zero);
        Assert.That(output.ToString(), Does.Contain("--endpoint").And.Contain("--pub-endpoint").And.Contain("--port-range"));
    }

    [Test]
    public async Task Run_prints_its_endpoints_and_epoch_and_stops_cleanly_when_cancelled()
    {
        var output = new LineSignallingWriter("registry: store ");
        using var cts = new CancellationTokenSource();
        using var data = new TemporaryDirectory();
        var run = RegistryNodeCommandLine.RunAsync(
            ["--endpoint", "tcp://127.0.0.1:0", "--pub-endpoint", "tcp://127.0.0.1:0", "--http", "http://127.0.0.1:0", "--data-dir", data.Path, "--log-level", "None"],
            output, new StringWriter(), _ => null, cts.Token);
        var first = await Task.WhenAny(output.Seen, run).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(first, Is.SameAs(output.Seen), $"the node stopped before printing its epoch:\n{output}");

        cts.Cancel();
        var exit = await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(exit, Is.Zero);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines[0], Does.Match(@"^registry: router tcp://127\.0\.0\.1:\d+$"));
        Assert.That(lines[1], Does.Match(@"^registry: pub tcp://127\.0\.0\.1:\d+$"));
        Assert.That(lines[2], Does.Match(@"^registry: http http://127\.0\.0\.1:\d+$"));
        Assert.That(lines[3], Does.StartWith("registry: epoch "));
        Assert.That(lines[4], Is.EqualTo($"registry: store {System.IO.Path.Combine(data.Path, "registry.db")}"));
        Assert.That(lines[^1], Is.EqualTo("registry: stopped"));
    }

    [Test]
    public async Task Run_on_an_endpoint_in_use_exits_one_naming_it()
    {
        await using var first = await TestNodes.StartAsync();
        var error = new StringWriter();
        var exit = await RegistryNodeCommandLine.RunAsync(
            ["--endpoint", first.RouterEndpoint, "--pub-endpoint", "tcp://127.0.0.1:0", "--http", "none", "--store", "memory", "--log-level", "None"], new StringWriter(), error, _ => null, CancellationToken.None);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(error.ToString(), Does.Contain(first.RouterEndpoint));
    }

    /// <summary>Captures output and completes <see cref="Seen"/> when a line starting with a prefix is written.</summary>
    private sealed class LineSignallingWriter(string prefix) : StringWriter
    {
        private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Seen => _seen.Task;

        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.StartsWith(prefix, StringComparison.Ordinal) == true) _seen.TrySetResult();
        }

        public override Task WriteLineAsync(string? value)
        {
            WriteLine(value);
            return Task.CompletedTask;
        }
    }
}
