using System.Diagnostics;
using System.Globalization;
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
/// Each part writes its own report (a run of one part leaves the others as they were): <c>results/ClusterPropagation.md</c>,
/// <c>ClusterLoad.md</c> (a registry loading the other hosts' entries), <c>ClusterRepublish.md</c>, <c>ClusterCapacity.md</c>.
/// </summary>
internal static class ClusterPropagation
{
    public const string Command = "cluster-propagation";

    public static int Run(string[] args)
    {
        var run = new Settings { Arguments = args };
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--hosts") run.HostCounts = args[i + 1].Split(',').Select(int.Parse).ToList();
            else if (args[i] == "--samples") run.Samples = int.Parse(args[i + 1]);
            else if (args[i] == "--tools") run.Tools = int.Parse(args[i + 1]);
            else if (args[i] == "--capacity-hosts") run.CapacityHosts = args[i + 1].Split(',').Select(int.Parse).ToList();
            else if (args[i] == "--republish") run.Republish = int.Parse(args[i + 1]);
            else if (args[i] == "--rounds") run.Rounds = int.Parse(args[i + 1]);
            else if (args[i] == "--only") run.Parts = args[i + 1].Split(',').ToHashSet();
            else if (args[i] == "--load") run.Load = int.Parse(args[i + 1]);
        }
        return RunAsync(run).GetAwaiter().GetResult();
    }

    /// <summary>
    /// What to run: <c>--only propagation,load,capacity,republish</c> (all by default); <c>--tools 10000</c> spread over
    /// <c>--capacity-hosts 3</c>; <c>--republish 2000</c> entries, <c>--load 2000</c> remote entries, <c>--rounds 3</c> of each mode.
    /// </summary>
    private sealed class Settings
    {
        public List<int> HostCounts = [3, 10];
        public int Samples = 300;
        public int Tools = 10_000;
        public List<int> CapacityHosts = [3];
        public int Republish = 2_000;
        public int Rounds = 3;
        public int Load = 2_000;
        public HashSet<string> Parts = ["propagation", "load", "capacity", "republish"];
        public string[] Arguments = [];
    }

    private static async Task<int> RunAsync(Settings run)
    {
        var hostCounts = run.Parts.Contains("propagation") ? run.HostCounts : [];
        var samples = run.Samples;
        var capacity = new List<ClusterCapacity.CapacityFigures>();
        (List<double> Sequential, List<double> Pipelined)? republish = null;
        List<ClusterLoad.LoadRound>? load = null;
        var loadBefore = ProcStat.LoadAverage();
        var started = TimeProvider.System.GetUtcNow();
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
            if (run.Parts.Contains("load")) load = await ClusterLoad.MeasureAsync(urls, run.Load, run.Rounds);
            if (run.Parts.Contains("republish"))
            {
                republish = await ClusterCapacity.RepublishAsync(urls, run.Republish, run.Rounds);
                Console.WriteLine($"cluster-propagation: republish {run.Republish}: one at a time {Median(republish.Value.Sequential):0} ms, 64 in flight {Median(republish.Value.Pipelined):0} ms");
            }
            if (run.Parts.Contains("capacity"))
                foreach (var hosts in run.CapacityHosts)
                {
                    var figures = await ClusterCapacity.MeasureAsync(urls, hosts, run.Tools);
                    capacity.Add(figures);
                    Console.WriteLine($"cluster-propagation: capacity {hosts} hosts, {run.Tools} tools: new host loads in {figures.NewHostLoadMs:0} ms");
                }
        }
        finally
        {
            foreach (var server in servers) await server.DisposeAsync();
            Directory.Delete(root, recursive: true);
        }
        // Each part writes its own report: a run of one part leaves the others' figures as they were.
        var header = $"""
            `dotnet run -c Release --project Onex.Benchmarks -- {Command} {string.Join(' ', run.Arguments)}` on {Environment.ProcessorCount} cores,
            {started:yyyy-MM-dd HH:mm}-{TimeProvider.System.GetUtcNow():HH:mm} UTC, load average {loadBefore} at the start and {ProcStat.LoadAverage()} at the end
            (1, 5, 15 min; the machine is shared with other builds and tests: figures are upper bounds); a three-server
            nats-server {NatsVersion()} cluster (R3 bucket) on loopback.
            """;
        if (rows.Count > 0)
            await WriteReportAsync("ClusterPropagation.md", $"""
                # Cluster propagation latency

                {header}
                N registries of simulated hosts in one process (heartbeat 1 s). Each sample registers a new bus on host 0 and
                measures the time from sending the request until `bus.registered` for it arrives on the change stream (PUB) of
                the last host, through that host's `RegistryClient.WatchAsync`. Samples one after the other.

                | hosts | samples | p50 (ms) | p99 (ms) | max (ms) |
                | --- | --- | --- | --- | --- |
                {string.Join("\n", rows)}

                Target (issue 15): p99 under 50 ms with 3 hosts on loopback.
                """);
        if (load is not null) await WriteReportAsync("ClusterLoad.md", LoadReport(load, run, header));
        if (republish is not null) await WriteReportAsync("ClusterRepublish.md", RepublishReport(republish.Value, run, header));
        if (capacity.Count > 0) await WriteReportAsync("ClusterCapacity.md", $"# Cluster capacity\n\n{header}{string.Concat(capacity.Select(CapacitySection))}");
        return 0;
    }

    private static async Task WriteReportAsync(string fileName, string report)
    {
        var path = ResultsPath.For(fileName);
        await File.WriteAllTextAsync(path, report + "\n");
        Console.WriteLine($"cluster-propagation: report written to {path}");
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

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[sorted.Count / 2];
    }

    private static string RepublishReport((List<double> Sequential, List<double> Pipelined) r, Settings run, string header)
    {
        static string All(List<double> values) => string.Join(", ", values.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
        return $"""
            # Re-publication of a host's entries

            {header}
            One registry (in this process) holding {run.Republish:N0} tools re-publishes its whole state into the R3 bucket, as
            after a restart, a reconnect or a removal by another registry: each tool's entry put, then its claim's
            create-if-absent (which finds the claim held, so a read follows). Time from queueing the re-publication until the
            bucket acknowledged all of it; {run.Rounds} rounds, the two modes alternating.

            | writes in flight | median (ms) | all rounds (ms) |
            | --- | --- | --- |
            | 1 (as before) | {Median(r.Sequential):0} | {All(r.Sequential)} |
            | 64 | {Median(r.Pipelined):0} | {All(r.Pipelined)} |
            """;
    }

    private static string LoadReport(List<ClusterLoad.LoadRound> rounds, Settings run, string header)
    {
        var rows = rounds.Select(r => string.Create(CultureInfo.InvariantCulture,
            $"| {r.Store} | {r.LoadMs:0} | {r.Probes} | {r.MedianProbeMs:0.0} | {r.MaxProbeMs:0.0} | {r.Sequence} |"));
        return $"""
            # Loading the other hosts' entries

            {header}
            A bucket holding {run.Load:N0} tool entries of one simulated host (written straight into the bucket, small schemas);
            a registry in this process starts with a fresh store ({run.Rounds} rounds of each store kind, alternating) and is
            timed from its start until its cluster view is current (the whole bucket applied on the registry thread). A client
            meanwhile sends a small introspection (cluster scope, filtered to nothing) one after the other: how many were
            answered during the load, and their round trips. `sequence`: the registry's change sequence after the load (each
            remote entry is one change with its own number).

            | store | load (ms) | probes during load | probe median (ms) | probe max (ms) | sequence |
            | --- | --- | --- | --- | --- | --- |
            {string.Join("\n", rows)}
            """;
    }

    private static string CapacitySection(ClusterCapacity.CapacityFigures f)
    {
        static string Mb(long kb) => (kb / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);
        static string Heap(double? mb) => mb is { } v ? v.ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
        var rows = f.PerHost.Append(f.NewHost).Select(h =>
            $"| {h.Host} | {(h.IdleRssKb == 0 ? "-" : Mb(h.IdleRssKb))} | {Mb(h.LoadedRssKb)} | {Heap(h.IdleHeapMb)} | {Heap(h.LoadedHeapMb)} | {h.SnapshotMs:0.0} |");
        return $"""


            ## Memory and snapshot time with {f.Tools:N0} tools over {f.Hosts} hosts

            {f.Hosts} registries as child processes (`onex-registry --cluster ... --store memory`), {f.Tools:N0} tools
            registered evenly over them ({f.InFlightPerHost} in flight per host, 192 in all; small schemas, about 250 bytes per
            contract; a registration answered `UNAVAILABLE` is resent with back-off, up to 10 attempts), filled in
            {f.FillSeconds:0.0} s until every registry's view held all of them; the registries answered
            {f.Unavailable:N0} `UNAVAILABLE` (a claim not decided within its 2 s bound) meanwhile. Then a new host's registry starts: from
            its process start until its view holds the whole catalogue: **{f.NewHostLoadMs:N0} ms** (each host's last
            entry, a sentinel tool written after all its others, asked for every 20 ms by a filtered introspection; a
            snapshot then holds every tool). Working set (VmRSS) idle and with the
            catalogue; managed heap after the last GC (`dotnet.gc.last_collection.heap.size` on the node's `/metrics`, all
            generations); snapshot: median of 5 round trips of a `SnapshotRequest` (every tool of the cluster, decoded) through
            a raw DEALER (the C# `RegistryClient` takes replies of at most 1 MiB, less than a snapshot of 10,000 tools).

            | registry | RSS idle (MB) | RSS loaded (MB) | heap idle (MB) | heap loaded (MB) | snapshot (ms) |
            | --- | --- | --- | --- | --- | --- |
            {string.Join("\n", rows)}
            """;
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
