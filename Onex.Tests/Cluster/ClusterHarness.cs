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
    public static async Task<RegistryNodeHost> StartHostAsync(
        ClusterOptions cluster, int index, string? dataDirectory = null, Func<RegistryNodeOptions, RegistryNodeOptions>? configure = null)
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
        var host = await RegistryNodeHost.StartAsync(configure is null ? options : configure(options));
        await BoundedAsync(host.Cluster!.WhenCurrentAsync(), $"{cluster.HostName} to join the cluster");
        return host;
    }

    /// <summary>A client of <paramref name="host"/> as node <paramref name="nodeId"/>, with <paramref name="token"/> when the registry has an auth file.</summary>
    public static Task<RegistryClient> ConnectAsync(RegistryNodeHost host, string nodeId, string? token = null) =>
        RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(host.RouterEndpoint, host.PubEndpoint, nodeId) with
        {
            Token = token,
            // After a nats-server dies the bucket is without a leader until the survivors elect one (Raft election
            // timeouts are seconds, more on a loaded machine); a registration waits for it on the registry, at most its
            // claim bound (5 s here), and is answered UNAVAILABLE (reason cluster) past it. The client resends with
            // back-off, as a client should: 20 attempts of 2 s plus back-off stay within 60 s (the reply memory).
            MaxAttempts = 20,
            RetryBaseDelay = TimeSpan.FromMilliseconds(200),
            RetryMaxDelay = TimeSpan.FromSeconds(1),
        }).AsTask();

    /// <summary>
    /// Awaits <paramref name="from"/>'s committed changes in the bucket, then each of <paramref name="to"/> having caught
    /// up with the bucket: what <paramref name="from"/> answered before the call is then in their views (bounded).
    /// </summary>
    public static async Task SyncAsync(RegistryNodeHost from, params RegistryNodeHost[] to)
    {
        await BoundedAsync(from.Cluster!.FlushAsync(), $"{from.Cluster.HostName}'s changes to reach the bucket");
        foreach (var host in to) await BoundedAsync(host.Cluster!.CatchUpAsync(), $"{host.Cluster.HostName} to catch up with the bucket");
    }

    /// <summary>Awaits <paramref name="task"/>, failing the test with <paramref name="what"/> past <paramref name="limit"/> (default 30 s).</summary>
    public static async Task BoundedAsync(Task task, string what, TimeSpan? limit = null)
    {
        try
        {
            await task.WaitAsync(limit ?? TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"timed out waiting for {what}");
        }
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? limit = null)
    {
        // Membership state with nothing to await (a host forgotten, a connection noticed lost): polled, bounded.
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var bound = limit ?? TimeSpan.FromSeconds(30);
        while (!condition())
        {
            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) > bound) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    public const string InputSchema = """{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}""";
    public const string OtherInputSchema = """{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}""";
    public const string OutputSchema = """{"type":"object"}""";
}
