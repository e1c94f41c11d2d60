using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// Registry A (SQLite store in a directory of its own) in a cluster whose other host, Z, is simulated by the test: it
/// writes Z's keys into the bucket of a real nats-server (no registry of its own that would publish them again). Z's
/// bus <c>bus-z</c> is registered, and an observer follows A's change stream, before each test.
/// </summary>
public abstract class SimulatedRemoteHostTests
{
    protected const string HostZ = "host-z";
    protected static readonly string BusKey = ClusterKeys.Entry("default", HostZ, ClusterKinds.Bus, "bus-z");

    private TemporaryDirectory _data = null!;
    private NatsTestServer _nats = null!;
    private NatsConnection _connection = null!;

    /// <summary>Registry A.</summary>
    protected RegistryNodeHost A { get; private set; } = null!;

    /// <summary>An observer's client of A.</summary>
    protected RegistryClient OnA { get; private set; } = null!;

    /// <summary>The cluster's bucket, where the test writes as host Z.</summary>
    protected INatsKVStore Bucket { get; private set; } = null!;

    /// <summary>A's change stream as the observer follows it (PROTOCOL.md 10.1), past Z's bus registered.</summary>
    protected IAsyncEnumerator<RegistryWatchEvent> ChangesOnA { get; private set; } = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _data = new TemporaryDirectory();
        _nats = await NatsTestServer.StartAsync();
        var bucket = ClusterHarness.Bucket();
        A = await StartHostAsync(Options(_nats.Url, bucket, "host-a") with { Replicas = 1 }, 0, _data.Path);
        OnA = await ConnectAsync(A, "observer-a");
        _connection = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });
        Bucket = await _connection.CreateKeyValueStoreContext().GetStoreAsync(bucket);
        // Host Z's heartbeat says it beats every 10 minutes: it stays healthy here for the whole test.
        await Bucket.PutAsync(ClusterKeys.Heartbeat(HostZ), RegistryCodec.SerializeBody(new ClusterHeartbeat { Host = HostZ, IntervalMs = 600_000 }));
        ChangesOnA = OnA.WatchEvents("registry.");
        await ChangesOnA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot of A");
        await Bucket.PutAsync(BusKey, Bus(port: 1));
        await ChangesOnA.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.BusRegistered, Key: "bus-z" }, "bus-z of host Z registered on A");
    }

    [TearDown]
    public async Task StopAsync()
    {
        await ChangesOnA.DisposeAsync();
        await OnA.DisposeAsync();
        await A.DisposeAsync();
        await _connection.DisposeAsync();
        await _nats.DisposeAsync();
        _data.Dispose();
    }

    /// <summary>Host Z's record of <c>bus-z</c>, at <paramref name="port"/>.</summary>
    protected static byte[] Bus(int port) => RegistryCodec.SerializeBody(new EventBusRecord
    {
        Name = "bus-z", Kind = BusKinds.Zmq, Endpoints = [$"tcp://127.0.0.1:{port}"], NodeId = "worker-z", Health = Health.Healthy,
    });
}
