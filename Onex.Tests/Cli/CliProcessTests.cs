using System.Diagnostics;
using System.Text.Json;
using Onex.Cli;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary><c>onex</c> as a real child process: `registry serve` and signal handling.</summary>
public class CliProcessTests
{
    // Starting a child runtime took over 10 s with both cores busy (measured: 15-20 s for the lease test at a load
    // average of 36), so waits that include a child's start get the conformance suite's child-process bound.
    private static readonly TimeSpan ChildProcessLimit = TimeSpan.FromSeconds(30);

    // A describe that waits for a starting child node gets --timeout 20; the harness must not cut it off sooner.
    private static readonly TimeSpan DescribeLimit = TimeSpan.FromSeconds(25);

    private static Process StartOnex(params string[] args)
    {
        var start = OnexProcess.StartInfo(args);
        return Process.Start(start) ?? throw new InvalidOperationException("could not start onex");
    }

    /// <summary>Sends SIGTERM (as a service manager would) and waits for the exit code.</summary>
    private static async Task<int> TerminateAsync(Process process)
    {
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()]))
            await kill.WaitForExitAsync().Within("kill to run", ChildProcessLimit);
        await process.WaitForExitAsync().Within("onex to exit after SIGTERM", ChildProcessLimit);
        return process.ExitCode;
    }

    private static bool PortIsTaken(int port)
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return false;
        }
        catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            return true;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Reads the node's stdout up to its "registry: store" line (printed once both endpoints are bound).</summary>
    private static async Task WaitUntilServingAsync(Process process)
    {
        while (await process.StandardOutput.ReadLineAsync().Within("the node's endpoints on stdout", TimeSpan.FromSeconds(90)) is { } line)
            if (line.StartsWith("registry: store ", StringComparison.Ordinal)) return;
        await process.WaitForExitAsync().Within("registry serve to exit after closing its stdout", ChildProcessLimit);
        Assert.Fail($"registry serve exited ({process.ExitCode}) before serving: {await process.StandardError.ReadToEndAsync()}");
    }

    private static void EnsureStopped(Process process)
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.Dispose();
    }

    [Test]
    public async Task Registry_serve_runs_a_node_that_answers_and_stops_cleanly_on_sigterm()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var router = $"tcp://127.0.0.1:{ports[0]}";
        var process = StartOnex("registry", "serve", "--endpoint", router, "--pub-endpoint", $"tcp://127.0.0.1:{ports[1]}", "--log-level", "Warning",
            "--port-range", (await OnexTest.ReservePortRangeAsync()).ToString(), "--store", "memory", "--http", "none");
        try
        {
            // The node prints its endpoints once it serves: wait for that (a child start took over 20 s at a load average of 60).
            await WaitUntilServingAsync(process);
            var result = await Onex.RunAsync(DescribeLimit, "--registry", router, "--timeout", "20", "describe", "--json");
            var exitCode = await TerminateAsync(process);

            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
            using var json = JsonDocument.Parse(result.Output);
            Assert.That(json.RootElement.GetProperty("epoch").GetString(), Is.Not.Empty);
            Assert.That(exitCode, Is.EqualTo(0), await process.StandardError.ReadToEndAsync());
        }
        finally
        {
            EnsureStopped(process);
        }
    }

    [Test]
    public async Task Registry_serve_after_the_global_registry_options_serves_on_those_endpoints()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var router = $"tcp://127.0.0.1:{ports[0]}";
        var process = StartOnex("--registry", router, "--registry-pub", $"tcp://127.0.0.1:{ports[1]}", "registry", "serve", "--log-level", "Warning",
            "--port-range", (await OnexTest.ReservePortRangeAsync()).ToString(), "--store", "memory", "--http", "none");
        try
        {
            await WaitUntilServingAsync(process);
            var result = await Onex.RunAsync(DescribeLimit, "--registry", router, "--timeout", "20", "describe", "--json");
            // The node binds its PUB before it answers: the --registry-pub port is taken now.
            var pubTaken = PortIsTaken(ports[1]);
            var exitCode = await TerminateAsync(process);

            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
            Assert.That(pubTaken, Is.True, "--registry-pub did not become the node's PUB endpoint");
            Assert.That(exitCode, Is.EqualTo(0), await process.StandardError.ReadToEndAsync());
        }
        finally
        {
            EnsureStopped(process);
        }
    }

    [Test]
    public async Task Registry_serve_given_the_endpoint_twice_is_a_usage_error()
    {
        var result = await Onex.RunAsync("--registry", "tcp://127.0.0.1:1", "registry", "serve", "--endpoint", "tcp://127.0.0.1:2");

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
        Assert.That(result.Error, Does.Contain("--registry").And.Contain("--endpoint"));
    }

    [Test]
    public async Task Ports_lease_releases_its_leases_on_sigterm()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        var process = StartOnex(Onex.At(registry, "ports", "lease", "--count", "1", "--json"));
        try
        {
            var line = await process.StandardOutput.ReadLineAsync().Within("the lease on stdout", ChildProcessLimit);
            var printed = JsonSerializer.Deserialize<List<PortLease>>(line!, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
            // The lease is printed before the command starts holding; a SIGTERM in between (a loaded machine) ends it as
            // "interrupted" (130). Terminate once it says it holds.
            var holding = await process.StandardError.ReadLineAsync().Within("the holding notice on stderr");
            Assert.That(holding, Does.StartWith("onex: holding"), "unexpected stderr before holding");
            var exitCode = await TerminateAsync(process);

            Assert.That(printed, Has.Count.EqualTo(1));
            Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), await process.StandardError.ReadToEndAsync());
            var leases = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] });
            Assert.That(leases.Leases, Is.Empty, "SIGTERM should release the leases before exit");
        }
        finally
        {
            EnsureStopped(process);
        }
    }

    [Test]
    public async Task Ports_lease_exits_with_the_lease_lost_code_once_its_lease_runs_out_with_the_registry_gone()
    {
        var registry = await TestRegistry.StartAsync();
        // A 2 s TTL: the lease runs out on the CLI's own clock 2 s after its last renewal that got through was sent.
        var process = StartOnex(Onex.At(registry, "ports", "lease", "--count", "1", "--ttl", "2", "--json"));
        try
        {
            var line = await process.StandardOutput.ReadLineAsync().Within("the lease on stdout", ChildProcessLimit);
            var lease = JsonSerializer.Deserialize<List<PortLease>>(line!, new JsonSerializerOptions(JsonSerializerDefaults.Web))!.Single();
            var stderr = process.StandardError.ReadToEndAsync();

            // Gone without a word: renewals get no answer, and no registry is left to say the lease expired.
            await registry.DisposeAsync();

            await process.WaitForExitAsync().Within("onex to exit once its lease ran out", TimeSpan.FromSeconds(30));
            var error = await stderr;
            Assert.That(process.ExitCode, Is.EqualTo(ExitCodes.LeaseLost), error);
            Assert.That(error, Does.Contain($"onex: lost lease {lease.LeaseId} on port {lease.Port}: ").And.Contain("ran out on this client's clock"),
                "stderr should name the lost lease and why");
        }
        finally
        {
            EnsureStopped(process);
            await registry.DisposeAsync();
        }
    }
}
