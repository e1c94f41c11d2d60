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
/// </summary>
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 15, invocationCount: 2000)]
public class RegistryLatencyBenchmarks
{
    private const string NodeId = "bench-latency-node";

    private readonly List<PortLease> _leases = new(4096);
    private RegistryNodeHost _registry = null!;
    private RawEchoServer _echo = null!;
    private BenchDealer _registryClient = null!;
    private BenchDealer _echoClient = null!;

    [GlobalSetup]
    public void Setup()
    {
        _registry = BenchRegistry.Start();
        _echo = new RawEchoServer();
        _registryClient = new BenchDealer(_registry.RouterEndpoint);
        _echoClient = new BenchDealer(_echo.Endpoint);
        // Heartbeats need an announced node; a long interval keeps it healthy for the whole run.
        _registryClient.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = NodeId, HeartbeatIntervalMs = 600_000 });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _registryClient.Dispose();
        _echoClient.Dispose();
        _echo.Dispose();
        _registry.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Releases the leases <see cref="PortRequest"/> took in this iteration, pipelined, unmeasured.</summary>
    [IterationCleanup(Target = nameof(PortRequest))]
    public void ReleaseLeases()
    {
        foreach (var lease in _leases)
            _registryClient.Send(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
        foreach (var _ in _leases) BenchDealer.Expect<Ack>(_registryClient.Receive());
        _leases.Clear();
    }

    /// <summary>One echo round trip of a NodeHeartbeat envelope.</summary>
    [Benchmark(Baseline = true)]
    public NodeHeartbeat RawEcho()
    {
        _echoClient.Send(new NodeHeartbeat { NodeId = NodeId });
        return _echoClient.Receive().BodyAs<NodeHeartbeat>();
    }

    /// <summary>A heartbeat of an announced node: the cheapest request that reaches the registry's state.</summary>
    [Benchmark]
    public Ack NodeHeartbeat() => _registryClient.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = NodeId });

    /// <summary>One lease (free check for <c>both</c>, broadcast, reply); released after the iteration.</summary>
    [Benchmark]
    public PortLease PortRequest()
    {
        var lease = _registryClient.Call<PortRequest, PortGrant>(new PortRequest { NodeId = NodeId, Purpose = "latency" }).Leases[0];
        _leases.Add(lease);
        return lease;
    }

    /// <summary>A lease and its release: two round trips, compare with twice the baseline.</summary>
    [Benchmark]
    public Ack LeaseThenRelease()
    {
        var lease = _registryClient.Call<PortRequest, PortGrant>(new PortRequest { NodeId = NodeId, Purpose = "latency" }).Leases[0];
        return _registryClient.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = NodeId, FencingToken = lease.FencingToken });
    }
}
