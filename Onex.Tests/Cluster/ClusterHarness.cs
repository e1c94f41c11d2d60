using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Transports.Registry;

namespace Onex.Tests.Cluster;

/// <summary>
/// Registries of simulated hosts (each with its own port range and host name) sharing a bucket of a real nats-server
/// cluster, with short cluster timings so health changes show within seconds.
/// </summary>
internal static class ClusterHarness
{
    public static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(200);

    /// <summary>Cluster options for <paramref name="host"/>: heartbeat 200 ms, unhealthy after 3 missed, removed after <paramref name="grace"/>.</summary>
    public static ClusterOptions Options(string servers, string bucket, string host, TimeSpan? grace = null) => new()
    {
        Servers = servers,
        HostName = host,
        Bucket = bucket,
        Replicas = 3,
        HeartbeatInterval = Heartbeat,
        MissedHeartbeats = 3,
        RemovalGrace = grace ?? TimeSpan.FromSeconds(1),
        RequestTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>A bucket name of this test's own.</summary>
    public static string Bucket() => "onex-test-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>
    /// Starts the registry of simulated host <paramref name="index"/> (of up to 4) on the test's reserved port block,
    /// a quarter each, so no two hosts lease the same port. <paramref name="dataDirectory"/>: a sqlite store there
    /// (restart tests); otherwise memory.
    /// </summary>
    public static async Task<RegistryNodeHost> StartHostAsync(ClusterOptions cluster, int index, string? dataDirectory = null)
    {
        var block = await OnexTest.ReservePortRangeAsync();
        var quarter = block.Count / 4;
        var first = block.First + index * quarter;
        var options = TestRegistry.Options() with
        {
            Cluster = cluster,
            Store = dataDirectory is null ? RegistryStoreOptions.InMemory : RegistryStoreOptions.Default with { DataDirectory = dataDirectory },
        };
        options = options with { Leases = options.Leases with { PortRange = new PortRange(first, first + quarter - 1) } };
        var host = await RegistryNodeHost.StartAsync(options);
        await WaitUntilAsync(() => host.Cluster!.Current, $"{cluster.HostName} to join the cluster");
        return host;
    }

    public static Task<RegistryClient> ConnectAsync(RegistryNodeHost host, string nodeId) =>
        RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(host.RouterEndpoint, host.PubEndpoint, nodeId) with
        {
            // A registration in cluster mode holds the registry for one bucket round trip, up to the cluster's request
            // timeout (5 s here): after a nats-server is killed the bucket has no leader until the survivors elect one,
            // so a client must wait longer than that for the answer (its resends with the same ids get the same one).
            RequestTimeout = TimeSpan.FromSeconds(6),
            // While its NATS connection fails over the registry answers claims UNAVAILABLE (reason cluster, resend
            // later): a client rides that out by resending with back-off (about 5 s of it here, besides the answers'
            // own time; attempts x timeout stay within the registry's 60 s of remembered replies).
            MaxAttempts = 8,
            RetryBaseDelay = TimeSpan.FromMilliseconds(200),
            RetryMaxDelay = TimeSpan.FromSeconds(1),
        }).AsTask();

    /// <summary>Asks <paramref name="client"/>'s registry until <paramref name="done"/> holds for its cluster-scope introspection (bounded).</summary>
    public static async Task<IntrospectionResponse> DescribeUntilAsync(RegistryClient client, Func<IntrospectionResponse, bool> done, string what, TimeSpan? limit = null)
    {
        // Another host's change arrives through the bucket; introspection has nothing to await, so it is asked again, bounded.
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(20));
        IntrospectionResponse last;
        while (!done(last = await client.DescribeAsync()))
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}; last answer: nodes [{string.Join(", ", last.Nodes!.Select(n => $"{n.NodeId}@{n.RegistryHost}:{n.Health}"))}], " +
                            $"buses [{string.Join(", ", last.Buses!.Select(b => $"{b.Name}@{b.RegistryHost}:{b.Health}"))}], stale {last.Cluster?.Stale}");
            await Task.Delay(50);
        }
        return last;
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? limit = null)
    {
        // Membership state has nothing to await; poll it, bounded.
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(30));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Runs a registration until the registry stops answering UNAVAILABLE, bounded: after a nats-server dies the
    /// bucket is without a leader until the survivors elect one, and the registry says so (retry later) meanwhile.
    /// </summary>
    public static async Task<T> WhileUnavailableAsync<T>(Func<ValueTask<T>> write, string what, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            try
            {
                return await write();
            }
            catch (Onex.Errors.UnavailableException ex) when (DateTime.UtcNow < deadline)
            {
                TestContext.Progress.WriteLine($"{what}: {ex.Message} (retrying)");
                await Task.Delay(200);
            }
        }
    }

    public const string InputSchema = """{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}""";
    public const string OtherInputSchema = """{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}""";
    public const string OutputSchema = """{"type":"object"}""";
}
