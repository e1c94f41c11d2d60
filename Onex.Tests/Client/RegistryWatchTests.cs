using Onex.Protocol;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary><see cref="RegistryClient.WatchAsync"/> against a real registry node: order, gaps, restarts.</summary>
public class RegistryWatchTests
{
    [Test]
    public async Task A_watch_sees_changes_in_sequence_order()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var events = client.WatchEvents();
        var initial = (await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot"))[^1];

        await client.RegisterBusAsync("orders", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await using (await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false }))
        {
        }
        await client.DeregisterBusAsync("orders");

        var seen = await events.UntilAsync(e => e.Change?.ChangeType == ChangeTypes.BusRemoved, "bus.removed");
        var changes = seen.Where(e => e.Kind == RegistryWatchEventKind.Change).Select(e => e.Change!).ToList();
        Assert.That(seen.Select(e => e.Kind), Is.All.EqualTo(RegistryWatchEventKind.Change), "no resync expected on a healthy registry");
        Assert.That(changes.Select(c => c.ChangeType), Is.EqualTo(new[]
        {
            ChangeTypes.BusRegistered, ChangeTypes.LeaseGranted, ChangeTypes.LeaseReleased, ChangeTypes.BusRemoved,
        }));
        Assert.That(changes.Select(c => c.Sequence), Is.EqualTo(Enumerable.Range(1, 4).Select(i => initial.Sequence + i)),
            "sequence numbers continue from the snapshot without gaps");
    }

    [Test]
    public async Task A_prefix_limits_the_watch_to_matching_changes()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var events = client.WatchEvents("registry.lease.");
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await client.RegisterBusAsync("ignored", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });

        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Change, "a lease change");
        Assert.That(seen.Single().Change!.ChangeType, Is.EqualTo(ChangeTypes.LeaseGranted), "the bus change must be filtered out, without a resync");
    }

    [Test]
    public async Task A_watch_that_misses_a_change_resyncs_by_snapshot_and_says_so()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var dropped = 0;
        client.WatchChangeFilter = change => change.ChangeType != ChangeTypes.LeaseGranted || Interlocked.Increment(ref dropped) > 1;
        await using var events = client.WatchEvents();
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });

        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "a resync after the dropped change");
        var resync = seen[^1];
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap));
        Assert.That(resync.Snapshot!.Leases.Select(l => l.LeaseId), Does.Contain(leases.Leases[0].LeaseId),
            "the resync snapshot carries the change the watch missed");
        Assert.That(seen.Any(e => e.Change?.ChangeType == ChangeTypes.LeaseGranted), Is.False, "the dropped change must not appear");
    }

    [Test]
    public async Task A_watch_follows_a_registry_restart_with_a_new_epoch()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var options = TestRegistry.Options($"tcp://127.0.0.1:{ports[0]}", $"tcp://127.0.0.1:{ports[1]}");
        var first = await TestRegistry.StartAsync(options);
        await using var client = await RegistryClient.ConnectAsync(first.ClientOptions() with { AnnounceNode = false });
        await using var events = client.WatchEvents();
        var initial = (await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot"))[^1];

        await first.DisposeAsync();
        await using var second = await RestartOnSameEndpointsAsync(options);

        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "a resync after the restart");
        var changed = seen.Single(e => e.Kind == RegistryWatchEventKind.EpochChanged);
        Assert.That((changed.PreviousEpoch, changed.Epoch), Is.EqualTo((initial.Epoch, second.Host.Epoch)));
        Assert.That(seen[^1].ResyncReason, Is.EqualTo(RegistryResyncReason.EpochChanged));
        Assert.That(seen[^1].Snapshot!.Epoch, Is.EqualTo(second.Host.Epoch));
    }

    [Test]
    public async Task A_watch_reports_a_stopping_then_silent_registry()
    {
        var registry = await TestRegistry.StartAsync();
        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        await using var events = client.WatchEvents();
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await registry.DisposeAsync();

        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.RegistrySilent, "registry silent");
        Assert.That(seen.Select(e => e.Kind), Does.Contain(RegistryWatchEventKind.RegistryStopping));
    }

    [Test]
    public async Task Disposing_a_test_watch_with_a_read_pending_ends_the_read_instead_of_throwing()
    {
        // What a timed-out UntilAsync leaves behind: the async iterator itself throws NotSupportedException when disposed
        // with a MoveNextAsync pending, which hid the timeout's own message in a CI report and left the watch open.
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var events = client.WatchEvents("registry.tool.");
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");
        var pending = events.MoveNextAsync().AsTask(); // no tool changes: stays pending

        Assert.That(pending.IsCompleted, Is.False, "nothing to read yet");
        await events.DisposeAsync().AsTask().Within("the watch to be disposed");
        Assert.That(pending.IsCompleted, Is.True, "the pending read ended (cancelled)");
    }

    /// <summary>Starts a registry on endpoints another one just released; ZeroMQ may take a moment to free them.</summary>
    internal static async Task<TestRegistry> RestartOnSameEndpointsAsync(RegistryNode.Hosting.RegistryNodeOptions options)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await TestRegistry.StartAsync(options);
            }
            catch (Errors.LeaseException ex) when (ex.Code == Errors.ErrorCodes.PortUnavailable && attempt < 50)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20)); // the old sockets are still closing; bounded retries
            }
        }
    }
}
