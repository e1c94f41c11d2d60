using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Round-trip latency of one request at a time on a DEALER over loopback TCP, against an in-process registry node,
/// beside a raw ROUTER echo round trip (the floor). Every case encodes the request envelope and decodes the reply
/// envelope and body, so client work matches. Each iteration runs a fixed number of invocations, so the leases
/// <see cref="PortRequest"/> takes can be given back after each iteration (outside the measurement).
/// <see cref="PortRequestCheckingInline"/> is the same against a node that checks every port inline.
/// </summary>
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 15, invocationCount: 2000)]
public class RegistryLatencyBenchmarks
{
    private const string NodeId = "bench-latency-node";

    private readonly List<PortLease> _leases = new(4096);
    private RegistryNodeHost? _registry;
    private RawEchoServer? _echo;
    private BenchDealer _client = null!;

    [GlobalSetup(Target = nameof(RawEcho))]
    public void SetupEcho()
    {
        _echo = new RawEchoServer();
        _client = new BenchDealer(_echo.Endpoint);
    }

    [GlobalSetup(Targets = [nameof(NodeHeartbeat), nameof(PortRequest), nameof(LeaseThenRelease)])]
    public void SetupRegistry() => StartRegistry(BenchRegistry.Options);

    [GlobalSetup(Target = nameof(PortRequestCheckingInline))]
    public void SetupInlineRegistry() => StartRegistry(BenchRegistry.InlineCheckOptions);

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _echo?.Dispose();
        _registry?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Releases the leases taken in this iteration, pipelined, unmeasured.</summary>
    [IterationCleanup(Targets = [nameof(PortRequest), nameof(PortRequestCheckingInline)])]
    public void ReleaseLeases()
    {
        foreach (var lease in _leases)
            _client.Send(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
        foreach (var _ in _leases) BenchDealer.Expect<Ack>(_client.Receive());
        _leases.Clear();
    }

    /// <summary>One echo round trip of a NodeHeartbeat envelope.</summary>
    [Benchmark(Baseline = true)]
    public NodeHeartbeat RawEcho()
    {
        _client.Send(new NodeHeartbeat { NodeId = NodeId });
        return _client.Receive().BodyAs<NodeHeartbeat>();
    }

    /// <summary>A heartbeat of an announced node: the cheapest request that reaches the registry's state.</summary>
    [Benchmark]
    public Ack NodeHeartbeat() => _client.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = NodeId });

    /// <summary>One lease (free check for <c>both</c>, broadcast, reply); released after the iteration.</summary>
    [Benchmark]
    public PortLease PortRequest() => Lease();

    /// <summary>One lease from a node that checks every port inline, on its request thread.</summary>
    [Benchmark]
    public PortLease PortRequestCheckingInline() => Lease();

    /// <summary>A lease and its release: two round trips, compare with twice the baseline.</summary>
    [Benchmark]
    public Ack LeaseThenRelease()
    {
        var lease = _client.Call<PortRequest, PortGrant>(new PortRequest { NodeId = NodeId, Purpose = "latency" }).Leases[0];
        return _client.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = NodeId, FencingToken = lease.FencingToken });
    }

    private void StartRegistry(RegistryNodeOptions options)
    {
        _registry = BenchRegistry.Start(options);
        _client = new BenchDealer(_registry.RouterEndpoint);
        // Heartbeats need an announced node; a long interval keeps it healthy for the whole run.
        _client.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = NodeId, HeartbeatIntervalMs = 600_000 });
    }

    private PortLease Lease()
    {
        var lease = _client.Call<PortRequest, PortGrant>(new PortRequest { NodeId = NodeId, Purpose = "latency" }).Leases[0];
        _leases.Add(lease);
        return lease;
    }
}
