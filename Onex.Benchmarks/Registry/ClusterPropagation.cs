using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;
using Onex.Testing.Nats;
using Onex.Transports.Registry;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// <c>cluster-propagation [--hosts 3,10] [--samples N]</c>: propagation latency of a registration from one host's registry
/// to another's change stream in cluster mode, on a three-server nats-server cluster started here (loopback, fresh store
/// directories, stopped by pid), with 3 and with 10 simulated hosts (registries in this process, one port range each).
/// Writes <c>results/ClusterPropagation.md</c>.
/// </summary>
internal static class ClusterPropagation
{
    public const string Command = "cluster-propagation";

    public static int Run(string[] args)
    {
        var hostCounts = new List<int> { 3, 10 };
        var samples = 300;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--hosts") hostCounts = args[i + 1].Split(',').Select(int.Parse).ToList();
            else if (args[i] == "--samples") samples = int.Parse(args[i + 1]);
        }
        return RunAsync(hostCounts, samples).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(List<int> hostCounts, int samples)
    {
        var root = Directory.CreateTempSubdirectory("onex-cluster-bench-").FullName;
        var servers = new List<NatsServerProcess>();
        var rows = new List<string>();
        try
        {
            var executable = NatsServerProcess.FindExecutable("the benchmark needs it");
            var clientPorts = Enumerable.Range(0, 3).Select(_ => FreeLoopbackPort()).ToArray();
            var routePorts = Enumerable.Range(0, 3).Select(_ => FreeLoopbackPort()).ToArray();
            var routes = string.Join(", ", routePorts.Select(p => $"\"nats-route://127.0.0.1:{p}\""));
            for (var i = 0; i < 3; i++)
            {
                var dir = Path.Combine(root, $"n{i}");
                Directory.CreateDirectory(Path.Combine(dir, "store"));
                var config = Path.Combine(dir, "nats.conf");
                await File.WriteAllTextAsync(config, $"server_name: \"bench-n{i}\"\ncluster {{ name: \"bench\", listen: \"127.0.0.1:{routePorts[i]}\", routes: [ {routes} ] }}\n");
                servers.Add(await NatsServerProcess.StartAsync(executable, clientPorts[i], Path.Combine(dir, "store"), config));
            }
            var urls = string.Join(",", clientPorts.Select(p => $"nats://127.0.0.1:{p}"));
            foreach (var hosts in hostCounts)
            {
                var (p50, p99, max) = await MeasureAsync(urls, hosts, samples);
                var row = $"| {hosts} | {samples} | {p50:0.00} | {p99:0.00} | {max:0.00} |";
                Console.WriteLine($"cluster-propagation: {hosts} hosts: p50 {p50:0.00} ms, p99 {p99:0.00} ms, max {max:0.00} ms");
                rows.Add(row);
            }
        }
        finally
        {
            foreach (var server in servers) await server.DisposeAsync();
            Directory.Delete(root, recursive: true);
        }
        var report = $"""
            # Cluster propagation latency

            `dotnet run -c Release --project Onex.Benchmarks -- {Command}` on {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC:
            a three-server nats-server {NatsVersion()} cluster (R3 bucket) on loopback; N registries of simulated hosts in one
            process (heartbeat 1 s). Each sample registers a new bus on host 0 and measures the time from sending the
            request until `bus.registered` for it arrives on the change stream (PUB) of the last host, through that
            host's `RegistryClient.WatchAsync`. Samples one after the other.

            | hosts | samples | p50 (ms) | p99 (ms) | max (ms) |
            | --- | --- | --- | --- | --- |
            {string.Join("\n", rows)}

            Target (issue 15): p99 under 50 ms with 3 hosts on loopback.
            """;
        var path = ResultsPath.For("ClusterPropagation.md");
        await File.WriteAllTextAsync(path, report + "\n");
        Console.WriteLine($"cluster-propagation: report written to {path}");
        return 0;
    }

    private static async Task<(double P50, double P99, double Max)> MeasureAsync(string urls, int hostCount, int samples)
    {
        var bucket = "onex-bench-" + Guid.NewGuid().ToString("N")[..8];
        var hosts = new List<RegistryNodeHost>();
        try
        {
            for (var i = 0; i < hostCount; i++)
            {
                var options = RegistryNodeOptions.Default with
                {
                    Endpoint = "tcp://127.0.0.1:0",
                    PubEndpoint = "tcp://127.0.0.1:0",
                    Store = RegistryStoreOptions.InMemory,
                    Leases = LeaseOptions.Default with { PortRange = new PortRange(31000 + i * 100, 31099 + i * 100) },
                    Cluster = new ClusterOptions { Servers = urls, HostName = $"bench-host-{i}", Bucket = bucket, Replicas = 3 },
                };
                hosts.Add(await RegistryNodeHost.StartAsync(options));
            }
            // A bound on a start that never completes: real time.
            await Task.WhenAll(hosts.Select(h => h.Cluster!.WhenCurrentAsync())).WaitAsync(TimeSpan.FromSeconds(60), TimeProvider.System);
            await using var writer = await RegistryClient.ConnectAsync(new RegistryClientOptions
            {
                Endpoint = hosts[0].RouterEndpoint, PubEndpoint = hosts[0].PubEndpoint, NodeId = "bench-writer",
            });
            var last = hosts[^1];
            await using var reader = await RegistryClient.ConnectAsync(new RegistryClientOptions
            {
                Endpoint = last.RouterEndpoint, PubEndpoint = last.PubEndpoint, NodeId = "bench-reader",
            });
            await using var changes = reader.WatchAsync("registry.bus.").GetAsyncEnumerator();
            await changes.MoveNextAsync(); // the first snapshot
            var latencies = new List<double>();
            for (var i = 0; i < samples + 20; i++)
            {
                var name = $"bench-bus-{i}";
                var started = Stopwatch.GetTimestamp();
                await writer.RegisterBusAsync(name, BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
                while (await changes.MoveNextAsync())
                    if (changes.Current.Change is { ChangeType: ChangeTypes.BusRegistered } change && change.Key == name) break;
                if (i >= 20) latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds); // the first 20 warm up
            }
            latencies.Sort();
            return (latencies[latencies.Count / 2], latencies[(int)Math.Ceiling(latencies.Count * 0.99) - 1], latencies[^1]);
        }
        finally
        {
            foreach (var host in hosts) await host.DisposeAsync();
        }
    }

    private static string NatsVersion()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(NatsServerProcess.FindExecutable(""), "--version") { RedirectStandardOutput = true })!;
            var text = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return text.Replace("nats-server: ", "");
        }
        catch (Exception ex) when (ex is IOException or System.ComponentModel.Win32Exception)
        {
            return "(version unknown)";
        }
    }

    // The kernel picks a free loopback port; nats-server binds it right after (a port taken in between fails the start loudly).
    private static int FreeLoopbackPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
