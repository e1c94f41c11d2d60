using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Events;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Change fan-out: the time from sending a change-causing request until every one of <see cref="Subscribers"/> SUB
/// sockets on the registry's PUB endpoint has received the change (and the requester its reply). One operation is
/// one change; each invocation is a lease (<c>lease.granted</c>) and its release (<c>lease.released</c>). The
/// baseline is a raw ROUTER that publishes a message of the same size on a raw PUB socket before echoing each
/// request, received by the same number of SUB sockets the same way.
/// </summary>
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10, invocationCount: 200)]
public class RegistryFanOutBenchmarks
{
    // Between probe messages while SUB filters propagate to the PUB (ZeroMQ offers nothing to await for that).
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(10);

    private const string NodeId = "bench-fanout-node";
    private const string Prefix = ChangeTypes.TopicPrefix + "lease.";

    private RegistryNodeHost? _registry;
    private RawEchoServer? _relay;
    private BenchDealer _client = null!;
    private SubscriberFarm _farm = null!;

    /// <summary>SUB sockets receiving every change.</summary>
    [Params(100)]
    public int Subscribers { get; set; }

    [GlobalSetup(Target = nameof(RawPubRelay))]
    public void SetupRelay()
    {
        _relay = new RawEchoServer(Encoding.UTF8.GetBytes(ChangeTypes.TopicOf(ChangeTypes.LeaseGranted)), RepresentativeChangeEvent());
        _client = new BenchDealer(_relay.Endpoint);
        _farm = new SubscriberFarm(_relay.PubEndpoint!, Subscribers, Prefix);
        WaitUntilLive(() => _client.Call<NodeHeartbeat, NodeHeartbeat>(new NodeHeartbeat { NodeId = NodeId }));
    }

    [GlobalSetup(Target = nameof(LeaseChanges))]
    public void SetupRegistry()
    {
        _registry = BenchRegistry.Start();
        _client = new BenchDealer(_registry.RouterEndpoint);
        _farm = new SubscriberFarm(_registry.PubEndpoint, Subscribers, Prefix);
        WaitUntilLive(() => LeaseAndRelease(wait: false));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _farm.Dispose();
        _relay?.Dispose();
        _registry?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Two requests, each published to every subscriber by the raw relay before its echo.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = 2)]
    public void RawPubRelay()
    {
        _farm.Expect(Subscribers);
        _client.Send(new PortRequest { NodeId = NodeId, Purpose = "fan-out" });
        _client.Receive();
        _farm.Wait();
        _farm.Expect(Subscribers);
        _client.Send(new LeaseRelease { LeaseId = "L-relay", NodeId = NodeId, FencingToken = 1 });
        _client.Receive();
        _farm.Wait();
    }

    /// <summary>A lease and its release, each change received by every subscriber.</summary>
    [Benchmark(OperationsPerInvoke = 2)]
    public void LeaseChanges() => LeaseAndRelease(wait: true);

    private void LeaseAndRelease(bool wait)
    {
        if (wait) _farm.Expect(Subscribers);
        var lease = _client.Call<PortRequest, PortGrant>(new PortRequest { NodeId = NodeId, Purpose = "fan-out" }).Leases[0];
        if (wait) _farm.Wait();
        if (wait) _farm.Expect(Subscribers);
        _client.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = NodeId, FencingToken = lease.FencingToken });
        if (wait) _farm.Wait();
    }

    // ZeroMQ subscriptions take a moment to reach the publisher; measure only once every socket has had a message.
    private void WaitUntilLive(Action causeMessage)
    {
        for (var attempt = 0; attempt < 200 && !_farm.AllLive; attempt++)
        {
            causeMessage();
            Thread.Sleep(ProbeInterval);
        }
        if (!_farm.AllLive) throw new TimeoutException("Not every subscriber received a message within 200 attempts.");
    }

    // A lease.granted event as the registry publishes it, so the baseline moves the same number of bytes.
    private static byte[] RepresentativeChangeEvent()
    {
        var lease = new PortLease
        {
            LeaseId = "L-019ab2c4d5e6f708-00000001", Port = 10000, Host = "127.0.0.1", NodeId = NodeId, Protocol = PortProtocols.Both,
            TtlMs = 30_000, GrantedAt = 1_767_225_600_000, ExpiresAt = 1_767_225_630_000, FencingToken = 1_767_225_600_000_000, Purpose = "fan-out",
        };
        var change = new RegistryChange
        {
            Epoch = Guid.CreateVersion7().ToString("N"), Sequence = 1, ChangeType = ChangeTypes.LeaseGranted, Key = lease.LeaseId,
            Timestamp = lease.GrantedAt, NewValue = new RegistryEntity { Lease = lease },
        };
        var evt = OnexEvent.Create(ChangeTypes.TopicOf(change.ChangeType), RegistryCodec.SerializeBody(change), "registry.change", "bench-registry");
        return OnexEventCodec.Default.Encode(evt);
    }
}
