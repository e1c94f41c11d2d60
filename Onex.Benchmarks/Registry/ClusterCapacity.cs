using System.Diagnostics;
using System.Globalization;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;
using Onex.Transports.Registry;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// The capacity figures of <c>cluster-propagation</c> on its nats-server cluster: memory and snapshot time per registry
/// with a catalogue of tools spread over the hosts (registries in child processes, so each one's memory is its own),
/// the time a new host's registry takes from its process start until its snapshot holds the whole catalogue, and
/// the time a host's re-publication takes, one write at a time against pipelined.
/// </summary>
internal static class ClusterCapacity
{
    private const int InFlight = 64;

    /// <summary>
    /// Registrations in flight over all hosts while filling: 64 per host with 3 hosts, the same total split over more
    /// (10 hosts at 64 each put 640 claims at once on the nats-server cluster, which on a loaded 2-core machine pushed
    /// claims past their 2 s bound: the fill then measured the retries, not the catalogue).
    /// </summary>
    private const int FillInFlight = 3 * InFlight;
    internal const string Input = """{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer","minimum":0}},"required":["id"]}""";
    internal const string Output = """{"type":"object","properties":{"ok":{"type":"boolean"}}}""";

    /// <summary>One registry's figures: its working set and managed heap idle and with the catalogue, and its snapshot time.</summary>
    public sealed record HostFigures(string Host, long IdleRssKb, long LoadedRssKb, double? IdleHeapMb, double? LoadedHeapMb, double SnapshotMs);

    public sealed record CapacityFigures(
        int Tools, int Hosts, double FillSeconds, List<HostFigures> PerHost, double NewHostLoadMs, HostFigures NewHost, int InFlightPerHost, long Unavailable);

    /// <summary>
    /// Starts <paramref name="hostCount"/> registries as child processes on the cluster, registers <paramref name="tools"/>
    /// tools spread evenly over them (up to 64 in flight per host), waits until every registry's snapshot holds them all,
    /// measures each, then starts one more registry and times its process start until its snapshot holds the catalogue.
    /// </summary>
    public static async Task<CapacityFigures> MeasureAsync(string urls, int hostCount, int tools)
    {
        var bucket = "onex-cap-" + Guid.NewGuid().ToString("N")[..8];
        var nodes = new List<RegistryNodeProcess>();
        var clients = new List<RegistryClient>();
        try
        {
            for (var i = 0; i < hostCount; i++)
            {
                nodes.Add(StartNode(urls, bucket, $"cap-host-{i}", i));
                clients.Add(await ConnectAsync(nodes[i], $"cap-node-{i}"));
            }
            var idle = new List<(long Rss, double? Heap)>();
            foreach (var node in nodes) idle.Add((RssKb(node.Id), await ManagedHeapMbAsync(node)));

            var fill = Stopwatch.StartNew();
            var inFlight = Math.Max(1, FillInFlight / hostCount);
            await Task.WhenAll(clients.Select((client, host) => Parallel.ForEachAsync(
                Enumerable.Range(0, tools).Where(t => t % hostCount == host),
                new ParallelOptions { MaxDegreeOfParallelism = inFlight },
                async (t, ct) => await client.RegisterToolAsync($"cap.tool.{t:D5}", "1.0.0", Input, Output, $"tool {t} of host {host}", cancellationToken: ct))));
            // Each host's last entry: its mirror writes in commit order, so a view holding every sentinel holds everything before.
            await Task.WhenAll(clients.Select((client, host) => client.RegisterToolAsync($"cap.sentinel.{host:D2}", "1.0.0", Input, Output).AsTask()));
            for (var i = 0; i < hostCount; i++) await UntilCatalogueAsync(clients[i], nodes[i], hostCount, tools);
            var fillSeconds = fill.Elapsed.TotalSeconds;
            long unavailable = 0;
            foreach (var node in nodes) unavailable += await UnavailableRepliesAsync(node);

            var perHost = new List<HostFigures>();
            for (var i = 0; i < hostCount; i++)
                perHost.Add(new HostFigures($"cap-host-{i}", idle[i].Rss, RssKb(nodes[i].Id), idle[i].Heap, await ManagedHeapMbAsync(nodes[i]), await SnapshotMsAsync(nodes[i], tools)));

            // A new host: from its process start until a snapshot of it holds the whole catalogue.
            var started = Stopwatch.StartNew();
            var fresh = StartNode(urls, bucket, $"cap-host-{hostCount}", hostCount);
            nodes.Add(fresh);
            var freshClient = await ConnectAsync(fresh, $"cap-node-{hostCount}");
            clients.Add(freshClient);
            var loadMs = await UntilCatalogueAsync(freshClient, fresh, hostCount, tools, started);
            var newHost = new HostFigures($"cap-host-{hostCount} (new)", 0, RssKb(fresh.Id), null, await ManagedHeapMbAsync(fresh), await SnapshotMsAsync(fresh, tools));
            return new CapacityFigures(tools, hostCount, fillSeconds, perHost, loadMs, newHost, inFlight, unavailable);
        }
        finally
        {
            foreach (var client in clients) await client.DisposeAsync();
            foreach (var node in nodes) node.Dispose();
        }
    }

    /// <summary>
    /// A host with <paramref name="entries"/> tools re-publishes its whole state (what a restart, a reconnect or a removal by
    /// another registry triggers), <paramref name="rounds"/> times with one write in flight and with 64, alternating:
    /// the milliseconds of each, from queueing the re-publication until the bucket acknowledged all of it.
    /// </summary>
    public static async Task<(List<double> Sequential, List<double> Pipelined)> RepublishAsync(string urls, int entries, int rounds)
    {
        var sequential = new List<double>();
        var pipelined = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var inFlight in new[] { 1, InFlight })
            {
                var bucket = "onex-repub-" + Guid.NewGuid().ToString("N")[..8];
                await using var host = await RegistryNodeHost.StartAsync(RegistryNodeOptions.Default with
                {
                    Endpoint = "tcp://127.0.0.1:0",
                    PubEndpoint = "tcp://127.0.0.1:0",
                    Store = RegistryStoreOptions.InMemory,
                    Leases = LeaseOptions.Default with { PortRange = new PortRange(28900, 28999) },
                    Cluster = new ClusterOptions { Servers = urls, HostName = "repub-host", Bucket = bucket, Replicas = 3, RepublishInFlight = inFlight },
                });
                var cluster = host.Cluster!;
                await cluster.WhenCurrentAsync().WaitAsync(TimeSpan.FromSeconds(60), TimeProvider.System);
                await using (var client = await ConnectAsync(host.RouterEndpoint, host.PubEndpoint, "repub-node"))
                {
                    await Parallel.ForEachAsync(Enumerable.Range(0, entries), new ParallelOptions { MaxDegreeOfParallelism = InFlight },
                        async (t, ct) => await client.RegisterToolAsync($"repub.tool.{t:D5}", "1.0.0", Input, Output, cancellationToken: ct));
                    await cluster.FlushAsync();
                    var clock = Stopwatch.StartNew();
                    host.Post(state => cluster.EnqueueResync(state));
                    await cluster.FlushAsync(); // behind the re-publication in the mirror queue
                    (inFlight == 1 ? sequential : pipelined).Add(clock.Elapsed.TotalMilliseconds);
                }
            }
        }
        return (sequential, pipelined);
    }

    /// <summary>
    /// A registry of simulated host <paramref name="host"/> on this measurement's own <paramref name="bucket"/> (given
    /// through the environment: the node has no option for it). Before, the bucket was not passed and every
    /// measurement of a run shared the default bucket: a 10-host measurement after a 3-host one found the 3-host one's
    /// claims (NOT_OWNER for a third of its tools) and stale hosts to remove.
    /// </summary>
    private static RegistryNodeProcess StartNode(string urls, string bucket, string host, int index) => RegistryNodeProcess.Start(
    [
        "--cluster", urls, "--host-name", host, "--store", "memory", "--log-level", "Warning",
        "--port-range", $"{29000 + index * 100}-{29099 + index * 100}", "--http", "http://127.0.0.1:0",
    ], environment: new Dictionary<string, string> { ["Registry__ClusterBucket"] = bucket });

    private static Task<RegistryClient> ConnectAsync(RegistryNodeProcess node, string nodeId) => ConnectAsync(node.RouterEndpoint, node.PubEndpoint, nodeId);

    /// <summary>
    /// A client that resends an <c>UNAVAILABLE</c> (reason <c>cluster</c>: a claim not decided within its bound) with
    /// back-off, as PROTOCOL.md asks of clients: up to 10 attempts of at most 5 s each plus at most 9 s of back-off, within
    /// the 60 s reply memory. Two attempts were too few on a loaded machine and ended the run on one slow claim.
    /// </summary>
    private static async Task<RegistryClient> ConnectAsync(string router, string pub, string nodeId) =>
        await RegistryClient.ConnectAsync(new RegistryClientOptions
        {
            Endpoint = router, PubEndpoint = pub, NodeId = nodeId, RequestTimeout = TimeSpan.FromSeconds(5), MaxAttempts = 10,
            RetryBaseDelay = TimeSpan.FromMilliseconds(200), RetryMaxDelay = TimeSpan.FromSeconds(1),
        });

    /// <summary>The <c>UNAVAILABLE</c> replies a registry sent so far (every request type), from its <c>/metrics</c>.</summary>
    private static async Task<long> UnavailableRepliesAsync(RegistryNodeProcess node)
    {
        if (node.HttpEndpoint is not { } http) return 0;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var text = await client.GetStringAsync(http.TrimEnd('/') + "/metrics");
        long sum = 0;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("onex_registry_requests_total{", StringComparison.Ordinal) || !line.Contains("code=\"UNAVAILABLE\"", StringComparison.Ordinal)) continue;
            if (double.TryParse(line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var count))
                sum += (long)count;
        }
        return sum;
    }

    /// <summary>
    /// Waits (bounded: 5 minutes) until the registry's view holds every host's sentinel, asked every 20 ms by an
    /// introspection filtered to them (small), and returns the milliseconds on <paramref name="clock"/> then; a snapshot
    /// then must hold all <paramref name="tools"/> tools and sentinels.
    /// </summary>
    private static async Task<double> UntilCatalogueAsync(RegistryClient client, RegistryNodeProcess node, int hosts, int tools, Stopwatch? clock = null)
    {
        clock ??= Stopwatch.StartNew();
        var filter = new IntrospectionRequest { Include = [IntrospectionSections.Tools], NamePrefix = "cap.sentinel.", Scope = IntrospectionScopes.Cluster };
        while ((await client.DescribeAsync(filter)).Tools!.Count < hosts)
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(5)) throw new TimeoutException($"A registry's view did not hold the {hosts} hosts' last entries within 5 minutes.");
            await Task.Delay(TimeSpan.FromMilliseconds(20), TimeProvider.System);
        }
        var seen = clock.Elapsed.TotalMilliseconds;
        var count = (await SnapshotAsync(node)).Tools.Count;
        if (count < tools + hosts) throw new InvalidOperationException($"A registry's snapshot held {count} tools after every host's last entry, not {tools + hosts}.");
        return seen;
    }

    /// <summary>
    /// The median of 5 snapshots' round trips (request until the decoded snapshot), milliseconds. Through a raw DEALER:
    /// the C# RegistryClient's socket takes replies of at most 1 MiB, and 10,000 tools make a snapshot of several.
    /// </summary>
    private static async Task<double> SnapshotMsAsync(RegistryNodeProcess node, int tools)
    {
        var times = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            var snapshot = await SnapshotAsync(node);
            times.Add(clock.Elapsed.TotalMilliseconds);
            if (snapshot.Tools.Count < tools + 1) throw new InvalidOperationException($"A snapshot held {snapshot.Tools.Count} tools, not {tools}.");
        }
        times.Sort();
        return times[times.Count / 2];
    }

    private static Task<RegistrySnapshot> SnapshotAsync(RegistryNodeProcess node) => Task.Run(() =>
    {
        using var dealer = new BenchDealer(node.RouterEndpoint);
        return dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
    });

    private static long RssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return 0;
    }

    /// <summary>
    /// The managed heap after the child's last garbage collection, MB: the sum over generations of the runtime's
    /// <c>dotnet.gc.last_collection.heap.size</c> on its <c>/metrics</c>; null when the endpoint does not show it.
    /// </summary>
    private static async Task<double?> ManagedHeapMbAsync(RegistryNodeProcess node)
    {
        if (node.HttpEndpoint is not { } http) return null;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var text = await client.GetStringAsync(http.TrimEnd('/') + "/metrics");
        double sum = 0;
        var found = false;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("dotnet_gc_last_collection_heap_size_bytes{", StringComparison.Ordinal)) continue;
            var value = line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var bytes))
            {
                sum += bytes;
                found = true;
            }
        }
        return found ? sum / 1024 / 1024 : null;
    }
}
