using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Testing.Nats;

namespace Onex.Tests.Cluster;

/// <summary>
/// A test class's own nats-server (its own data directory, stopped after each test) with one fresh cluster bucket
/// (history 1, as the registry creates it): for tests that drive the bucket's keys directly.
/// </summary>
public abstract class BucketTestBase
{
    private NatsTestServer _nats = null!;
    private NatsConnection _connection = null!;

    /// <summary>The bucket of the running test.</summary>
    protected INatsKVStore Store { get; private set; } = null!;

    [SetUp]
    public async Task StartBucketAsync()
    {
        _nats = await NatsTestServer.StartAsync();
        _connection = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });
        Store = await _connection.CreateKeyValueStoreContext().CreateStoreAsync(new NatsKVConfig(ClusterHarness.Bucket()) { History = 1 });
    }

    [TearDown]
    public async Task StopBucketAsync()
    {
        await _connection.DisposeAsync();
        await _nats.DisposeAsync();
    }
}
