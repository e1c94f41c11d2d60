using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.Testing;
using Onex.Testing.Registry;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>
/// A real registry node in this process, on OS-chosen loopback ports (or fixed ones, for restart tests), with
/// short timings so lease and heartbeat behaviour shows within milliseconds.
/// </summary>
internal sealed class TestRegistry : IAsyncDisposable
{
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(50);

    private TestRegistry(RegistryNodeHost host) => Host = host;

    public RegistryNodeHost Host { get; }

    public static RegistryNodeOptions Options(string router = "tcp://127.0.0.1:0", string pub = "tcp://127.0.0.1:0") =>
        RegistryNodeOptions.Default with
        {
            Endpoint = router,
            PubEndpoint = pub,
            HeartbeatInterval = HeartbeatInterval,
            Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
            Leases = LeaseOptions.Default with
            {
                MinTtl = TimeSpan.FromMilliseconds(100),
                DefaultTtl = TimeSpan.FromSeconds(5),
                Quarantine = TimeSpan.Zero,
                // Stands for "a block of its own": StartAsync swaps in the test's reserved block (PoolOfItsOwnAsync).
                PortRange = OnexTestEnvironment.PrivatePortRange,
            },
        };

    public static async Task<TestRegistry> StartAsync(RegistryNodeOptions? options = null, TimeProvider? timeProvider = null) =>
        new(await RegistryNodeHost.StartAsync(await PoolOfItsOwnAsync(options ?? Options()), timeProvider: timeProvider));

    /// <summary>
    /// Options whose pool, when it is the whole private range, becomes the test's reserved block of it: registries of
    /// parallel tests (and of other test processes) then never grant the same port. A restarted registry gets the same block.
    /// </summary>
    public static async Task<RegistryNodeOptions> PoolOfItsOwnAsync(RegistryNodeOptions options) =>
        options.Leases.PortRange != OnexTestEnvironment.PrivatePortRange ? options
            : options with { Leases = options.Leases with { PortRange = await OnexTest.ReservePortRangeAsync() } };

    /// <summary>Client options aimed at this registry, with short timeouts.</summary>
    public RegistryClientOptions ClientOptions(string? nodeId = null) => ClientOptionsFor(Host.RouterEndpoint, Host.PubEndpoint, nodeId);

    public static RegistryClientOptions ClientOptionsFor(string router, string pub, string? nodeId = null) => new()
    {
        Endpoint = router,
        PubEndpoint = pub,
        NodeId = nodeId ?? $"test-{Guid.NewGuid():N}"[..16],
        NodeName = TestContext.CurrentContext.Test.Name,
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        RequestTimeout = TimeSpan.FromSeconds(1),
        MaxAttempts = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(20),
        RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        ExpectedRegistryHeartbeatInterval = HeartbeatInterval,
    };

    public Task<RegistryClient> ConnectAsync(string? nodeId = null) => RegistryClient.ConnectAsync(ClientOptions(nodeId)).AsTask();

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}

/// <summary>Bounded waits for things tests await.</summary>
internal static class Waits
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(10);

    /// <summary>Awaits <paramref name="task"/>, failing the test with <paramref name="what"/> if it takes longer than <see cref="Default"/>.</summary>
    public static async Task<T> Within<T>(this Task<T> task, string what, TimeSpan? limit = null)
    {
        try
        {
            return await task.WaitAsync(limit ?? Default);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"timed out after {(limit ?? Default).TotalSeconds} s waiting for {what}");
            throw;
        }
    }

    /// <summary>Awaits <paramref name="task"/>, failing the test with <paramref name="what"/> if it takes longer than <see cref="Default"/>.</summary>
    public static async Task Within(this Task task, string what, TimeSpan? limit = null)
    {
        try
        {
            await task.WaitAsync(limit ?? Default);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"timed out after {(limit ?? Default).TotalSeconds} s waiting for {what}");
            throw;
        }
    }

    /// <summary>Watches <paramref name="client"/>'s registry (<paramref name="prefix"/>) for a test: see <see cref="WatchEvents"/>.</summary>
    public static WatchEvents WatchEvents(this RegistryClient client, string prefix = ChangeTypes.TopicPrefix) => new(client.WatchAsync(prefix));

    /// <summary>
    /// Reads watch events until the registry's state as a watcher sees it shows what is awaited: a change satisfying
    /// <paramref name="change"/>, or a resync whose snapshot satisfies <paramref name="snapshot"/> (a change the watch
    /// missed on the wire comes as a resync that already holds its effect, never as nothing).
    /// </summary>
    public static Task<List<RegistryWatchEvent>> UntilStateAsync(
        this IAsyncEnumerator<RegistryWatchEvent> events, Func<RegistryChange, bool> change, Func<RegistrySnapshot, bool> snapshot, string what,
        TimeSpan? limit = null) =>
        events.UntilAsync(e => e.Change is { } c ? change(c) : e is { Kind: RegistryWatchEventKind.Resynced, Snapshot: { } s } && snapshot(s), what, limit);

    /// <summary>Reads watch events until one satisfies <paramref name="match"/>, returning every event read (bounded: <paramref name="limit"/>, default <see cref="Default"/>).</summary>
    public static async Task<List<RegistryWatchEvent>> UntilAsync(
        this IAsyncEnumerator<RegistryWatchEvent> events, Func<RegistryWatchEvent, bool> match, string what, TimeSpan? limit = null)
    {
        var seen = new List<RegistryWatchEvent>();
        var deadline = Task.Delay(limit ?? Default);
        while (true)
        {
            var next = events.MoveNextAsync().AsTask();
            if (await Task.WhenAny(next, deadline) == deadline)
                Assert.Fail($"timed out waiting for {what}; saw: {string.Join(" | ", seen.Select(e => $"{e.Kind} {e.Detail}"))}");
            Assert.That(await next, Is.True, $"the watch ended before {what}");
            seen.Add(events.Current);
            if (match(events.Current)) return seen;
        }
    }
}

/// <summary>
/// A registry watch as tests read it (<see cref="Waits.WatchEvents"/>): disposing it cancels a read still pending (one a
/// timed-out <see cref="Waits.UntilAsync"/> left behind) and waits for it before disposing the watch, so a test that failed
/// on a timeout reports that, not the async iterator's "MoveNextAsync pending" error, and its sockets are closed.
/// </summary>
internal sealed class WatchEvents(IAsyncEnumerable<RegistryWatchEvent> watch) : IAsyncEnumerator<RegistryWatchEvent>
{
    private readonly CancellationTokenSource _stop = new();
    private IAsyncEnumerator<RegistryWatchEvent>? _events;
    private Task<bool>? _pending;

    public RegistryWatchEvent Current => _events!.Current;

    public ValueTask<bool> MoveNextAsync()
    {
        _events ??= watch.GetAsyncEnumerator(_stop.Token);
        var next = _events.MoveNextAsync();
        if (next.IsCompleted) return next;
        var pending = next.AsTask();
        _pending = pending;
        return new ValueTask<bool>(pending);
    }

    public async ValueTask DisposeAsync()
    {
        if (_events is null) return;
        await _stop.CancelAsync();
        if (_pending is { IsCompleted: false } pending)
        {
            try
            {
                await pending.WaitAsync(Waits.Default);
            }
            catch (Exception)
            {
                // Cancelled (or the test's own failure already reported): all that matters is that it is no longer pending.
            }
        }
        if (_pending is null or { IsCompleted: true }) await _events.DisposeAsync();
        _stop.Dispose();
    }
}

