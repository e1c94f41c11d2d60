using System.Diagnostics;
using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;
using Onex.Transports.Registry;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// The <c>load</c> part of <c>cluster-propagation</c>: how long a registry (in this process) takes from its start until
/// its view holds a bucket of <c>--load N</c> remote tool entries, and how long a small introspection waits meanwhile.
/// The bucket is filled directly (one simulated host, its heartbeat interval an hour so it stays healthy), so the time
/// is the registry's loading alone, not the other hosts' registrations.
/// </summary>
internal static class ClusterLoad
{
    private const string SourceHost = "load-source";

    /// <summary>One load: the store kind, milliseconds until the view was current, and the probes answered meanwhile.</summary>
    public sealed record LoadRound(string Store, double LoadMs, int Probes, double MaxProbeMs, double MedianProbeMs, long Sequence);

    public static async Task<List<LoadRound>> MeasureAsync(string urls, int entries, int rounds)
    {
        var bucket = "onex-load-" + Guid.NewGuid().ToString("N")[..8];
        await FillAsync(urls, bucket, entries);
        var results = new List<LoadRound>();
        for (var round = 0; round < rounds; round++)
            foreach (var durable in new[] { true, false })
            {
                var loaded = await LoadOnceAsync(urls, bucket, $"load-reader-{round}-{(durable ? "sqlite" : "memory")}", durable, entries);
                results.Add(loaded);
                Console.WriteLine($"cluster-propagation: load {entries} ({loaded.Store}): {loaded.LoadMs:0} ms, {loaded.Probes} probes meanwhile, longest {loaded.MaxProbeMs:0} ms");
            }
        return results;
    }

    private static async Task FillAsync(string urls, string bucket, int entries)
    {
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = urls });
        var kv = nats.CreateKeyValueStoreContext();
        var store = await kv.CreateStoreAsync(new NatsKVConfig(bucket)
        {
            History = 1, NumberOfReplicas = 3, Storage = NatsKVStorageType.File, MaxValueSize = 4 * 1024 * 1024,
        });
        var heartbeat = new ClusterHeartbeat
        {
            Host = SourceHost, Epoch = "bench", IntervalMs = (long)TimeSpan.FromHours(1).TotalMilliseconds,
            SentAt = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        await store.PutAsync(ClusterKeys.Heartbeat(SourceHost), RegistryCodec.SerializeBody(heartbeat));
        await Parallel.ForEachAsync(Enumerable.Range(0, entries), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (t, ct) =>
        {
            var tool = new ToolContractRecord
            {
                Name = $"load.tool.{t:D5}", Version = "1.0.0", InputSchema = ClusterCapacity.Input, OutputSchema = ClusterCapacity.Output,
                NodeId = "load-node", Fingerprint = $"bench-{t:D5}", RegistryHost = SourceHost, Description = $"tool {t}",
            };
            await store.PutAsync(ClusterKeys.Entry("default", SourceHost, ClusterKinds.Tool, tool.Name + "@" + tool.Version), RegistryCodec.SerializeBody(tool), cancellationToken: ct);
        });
    }

    private static async Task<LoadRound> LoadOnceAsync(string urls, string bucket, string hostName, bool durable, int entries)
    {
        var data = durable ? Directory.CreateTempSubdirectory("onex-load-") : null;
        try
        {
            var clock = Stopwatch.StartNew();
            await using var host = await RegistryNodeHost.StartAsync(RegistryNodeOptions.Default with
            {
                Endpoint = "tcp://127.0.0.1:0",
                PubEndpoint = "tcp://127.0.0.1:0",
                Store = data is null ? RegistryStoreOptions.InMemory : RegistryStoreOptions.Default with { DataDirectory = data.FullName },
                Leases = LeaseOptions.Default with { PortRange = new PortRange(28800, 28899) },
                Cluster = new ClusterOptions { Servers = urls, HostName = hostName, Bucket = bucket, Replicas = 3 },
            });
            var current = host.Cluster!.WhenCurrentAsync();
            var currentAt = current.ContinueWith(_ => clock.Elapsed.TotalMilliseconds, TaskScheduler.Default);
            await using var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
            {
                Endpoint = host.RouterEndpoint, PubEndpoint = host.PubEndpoint, NodeId = hostName + "-probe",
                RequestTimeout = TimeSpan.FromSeconds(60), MaxAttempts = 1,
            });
            var probe = new IntrospectionRequest { Include = [IntrospectionSections.Tools], NamePrefix = "none.", Scope = IntrospectionScopes.Cluster };
            var probes = new List<double>();
            while (!current.IsCompleted)
            {
                if (clock.Elapsed > TimeSpan.FromMinutes(5)) throw new TimeoutException($"The registry did not load {entries} entries within 5 minutes.");
                var sent = Stopwatch.GetTimestamp();
                await client.DescribeAsync(probe);
                probes.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            }
            var loadMs = await currentAt.WaitAsync(TimeSpan.FromMinutes(5), TimeProvider.System);
            // In-process: a reply with every tool would pass the C# client's receive bound (1 MiB) at 10,000 tools.
            var held = await host.InvokeAsync(state => host.Cluster.Catalog.Tools(state).Count(t => t.Name.StartsWith("load.tool.", StringComparison.Ordinal)));
            if (held != entries) throw new InvalidOperationException($"The registry's view held {held} of the {entries} tools once current.");
            var sequence = await host.InvokeAsync(state => state.Journal.Sequence);
            probes.Sort();
            return new LoadRound(durable ? "sqlite" : "memory", loadMs, probes.Count, probes.Count == 0 ? 0 : probes[^1],
                probes.Count == 0 ? 0 : probes[probes.Count / 2], sequence);
        }
        finally
        {
            data?.Delete(recursive: true);
        }
    }
}
