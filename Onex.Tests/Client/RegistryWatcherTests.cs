using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>The watch state machine (subscribe, snapshot, in-order apply, resync, liveness) against a fake broadcast source.</summary>
public class RegistryWatcherTests
{
    private sealed class FakeSource : IRegistryBroadcastSource
    {
        private readonly Channel<RegistryBroadcast> _channel = Channel.CreateUnbounded<RegistryBroadcast>();
        public ChannelReader<RegistryBroadcast> Reader => _channel.Reader;
        public long Dropped => 0;
        public void Send(RegistryChange change) => _channel.Writer.TryWrite(RegistryBroadcast.Of(change));
        public void Send(RegistryHeartbeat heartbeat) => _channel.Writer.TryWrite(RegistryBroadcast.Of(heartbeat));
        public void Dispose() => _channel.Writer.TryComplete();
    }

    /// <summary>Serves snapshots from a queue; an empty queue means the registry does not answer.</summary>
    private sealed class FakeSnapshots
    {
        public Queue<RegistrySnapshot> Next { get; } = new();
        public int Taken { get; private set; }

        public ValueTask<RegistrySnapshot> TakeAsync(CancellationToken cancellationToken)
        {
            Taken++;
            return Next.TryDequeue(out var snapshot)
                ? ValueTask.FromResult(snapshot)
                : ValueTask.FromException<RegistrySnapshot>(new UnavailableException("scripted: registry did not answer"));
        }
    }

    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private static RegistryChange Change(string epoch, long sequence, string changeType = ChangeTypes.LeaseGranted) =>
        new() { Epoch = epoch, Sequence = sequence, ChangeType = changeType, Key = $"key-{sequence}" };

    private static RegistryHeartbeat Heartbeat(string epoch, long sequence, bool stopping = false) =>
        new() { Epoch = epoch, Sequence = sequence, IntervalMs = (long)Interval.TotalMilliseconds, Stopping = stopping };

    private static RegistrySnapshot Snapshot(string epoch, long sequence) => new() { Epoch = epoch, Sequence = sequence };

    private static (FakeSource Source, FakeSnapshots Snapshots, IAsyncEnumerator<RegistryWatchEvent> Events, FakeTimeProvider Time) Start(
        string prefix = ChangeTypes.TopicPrefix, params RegistrySnapshot[] snapshots)
    {
        var source = new FakeSource();
        var fakeSnapshots = new FakeSnapshots();
        foreach (var snapshot in snapshots) fakeSnapshots.Next.Enqueue(snapshot);
        var time = new FakeTimeProvider();
        var watcher = new RegistryWatcher(source, fakeSnapshots.TakeAsync, prefix, Interval, time, NullLogger.Instance);
        return (source, fakeSnapshots, watcher.RunAsync(CancellationToken.None).GetAsyncEnumerator(), time);
    }

    private static async Task<RegistryWatchEvent> NextAsync(IAsyncEnumerator<RegistryWatchEvent> events)
    {
        var moved = await events.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(moved, Is.True, "the watch ended unexpectedly");
        return events.Current;
    }

    [Test]
    public async Task The_first_event_is_the_initial_snapshot()
    {
        var (source, _, events, _) = Start(snapshots: Snapshot("e1", 4));
        source.Send(Heartbeat("e1", 4));

        var first = await NextAsync(events);

        Assert.That(first.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(first.ResyncReason, Is.EqualTo(RegistryResyncReason.Initial));
        Assert.That(first.Snapshot!.Sequence, Is.EqualTo(4));
    }

    [Test]
    public async Task Changes_at_or_below_the_snapshot_sequence_are_dropped_and_later_ones_come_in_order()
    {
        var (source, _, events, _) = Start(snapshots: Snapshot("e1", 2));
        foreach (var sequence in new long[] { 1, 2, 3, 4, 5 }) source.Send(Change("e1", sequence));

        Assert.That((await NextAsync(events)).Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        var sequences = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var next = await NextAsync(events);
            Assert.That(next.Kind, Is.EqualTo(RegistryWatchEventKind.Change), $"event {i} after the snapshot should be a change");
            sequences.Add(next.Change!.Sequence);
        }
        Assert.That(sequences, Is.EqualTo(new long[] { 3, 4, 5 }));
    }

    [Test]
    public async Task A_skipped_sequence_number_resyncs_by_snapshot_and_says_gap()
    {
        var (source, snapshots, events, _) = Start(snapshots: [Snapshot("e1", 0), Snapshot("e1", 3)]);
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        source.Send(Change("e1", 1));
        source.Send(Change("e1", 3)); // 2 was lost
        source.Send(Change("e1", 4));

        Assert.That((await NextAsync(events)).Change!.Sequence, Is.EqualTo(1));
        var resync = await NextAsync(events);
        Assert.That(resync.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap));
        Assert.That(resync.Detail, Does.Contain("expected sequence 2, got 3"));
        Assert.That((await NextAsync(events)).Change!.Sequence, Is.EqualTo(4), "changes after the resync snapshot continue in order");
        Assert.That(snapshots.Taken, Is.EqualTo(2));
    }

    [Test]
    public async Task A_heartbeat_ahead_of_the_last_change_resyncs_as_a_gap()
    {
        var (source, _, events, _) = Start(snapshots: [Snapshot("e1", 5), Snapshot("e1", 6)]);
        source.Send(Heartbeat("e1", 5));
        await NextAsync(events);

        source.Send(Heartbeat("e1", 6)); // change 6 never arrived

        var resync = await NextAsync(events);
        Assert.That(resync.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap));
        Assert.That(resync.Sequence, Is.EqualTo(6));
    }

    [Test]
    public async Task A_new_epoch_is_announced_then_resynced_and_stragglers_of_the_old_epoch_are_ignored()
    {
        var (source, _, events, _) = Start(snapshots: [Snapshot("e1", 9), Snapshot("e2", 1)]);
        source.Send(Heartbeat("e1", 9));
        await NextAsync(events);

        source.Send(Heartbeat("e2", 1));
        source.Send(Change("e1", 10)); // late broadcast of the old registry
        source.Send(Change("e2", 2));

        var changed = await NextAsync(events);
        Assert.That(changed.Kind, Is.EqualTo(RegistryWatchEventKind.EpochChanged));
        Assert.That(changed.PreviousEpoch, Is.EqualTo("e1"));
        Assert.That(changed.Epoch, Is.EqualTo("e2"));
        var resync = await NextAsync(events);
        Assert.That(resync.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.EpochChanged));
        var next = await NextAsync(events);
        Assert.That((next.Kind, next.Change?.Epoch, next.Change?.Sequence), Is.EqualTo((RegistryWatchEventKind.Change, "e2", 2L)),
            "the old epoch's change must be ignored, the new epoch's applied");
    }

    [Test]
    public async Task Three_silent_heartbeat_periods_yield_registry_silent_and_a_heartbeat_yields_resumed()
    {
        var (source, _, events, time) = Start(snapshots: Snapshot("e1", 0));
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        var pending = events.MoveNextAsync(); // the watcher is now waiting with its silence timer set
        time.Advance(Interval * 3);
        Assert.That(await pending.AsTask().WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(events.Current.Kind, Is.EqualTo(RegistryWatchEventKind.RegistrySilent));

        source.Send(Heartbeat("e1", 0));
        Assert.That((await NextAsync(events)).Kind, Is.EqualTo(RegistryWatchEventKind.RegistryResumed));
    }

    [Test]
    public async Task A_stopping_heartbeat_yields_registry_stopping()
    {
        var (source, _, events, _) = Start(snapshots: Snapshot("e1", 0));
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        source.Send(Heartbeat("e1", 0, stopping: true));

        Assert.That((await NextAsync(events)).Kind, Is.EqualTo(RegistryWatchEventKind.RegistryStopping));
    }

    [Test]
    public async Task A_failed_resync_yields_silent_and_is_retried_on_the_next_broadcast()
    {
        var (source, snapshots, events, _) = Start(snapshots: Snapshot("e1", 0));
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        source.Send(Change("e1", 2)); // gap, and the registry does not answer the snapshot
        var silent = await NextAsync(events);
        Assert.That(silent.Kind, Is.EqualTo(RegistryWatchEventKind.RegistrySilent));

        snapshots.Next.Enqueue(Snapshot("e1", 2));
        source.Send(Heartbeat("e1", 2));
        Assert.That((await NextAsync(events)).Kind, Is.EqualTo(RegistryWatchEventKind.RegistryResumed));
        var resync = await NextAsync(events);
        Assert.That(resync.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Retried));
    }

    [Test]
    public async Task The_prefix_filters_what_is_yielded_but_every_change_counts_for_gap_detection()
    {
        var (source, snapshots, events, _) = Start("registry.bus.", Snapshot("e1", 0));
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        source.Send(Change("e1", 1, ChangeTypes.LeaseGranted));
        source.Send(Change("e1", 2, ChangeTypes.BusRegistered));

        var next = await NextAsync(events);
        Assert.That((next.Kind, next.Change?.ChangeType), Is.EqualTo((RegistryWatchEventKind.Change, ChangeTypes.BusRegistered)));
        Assert.That(snapshots.Taken, Is.EqualTo(1), "a filtered-out change is not a gap");
    }

    [Test]
    public void A_first_snapshot_that_fails_throws_unavailable()
    {
        var (source, _, events, _) = Start();
        source.Send(Heartbeat("e1", 0));

        Assert.ThrowsAsync<UnavailableException>(async () => await events.MoveNextAsync());
    }

    [Test]
    public async Task A_change_of_an_unknown_type_resyncs_instead_of_being_applied()
    {
        var (source, _, events, _) = Start(snapshots: [Snapshot("e1", 0), Snapshot("e1", 1)]);
        source.Send(Heartbeat("e1", 0));
        await NextAsync(events);

        source.Send(Change("e1", 1, "lease.teleported"));

        var resync = await NextAsync(events);
        Assert.That(resync.Kind, Is.EqualTo(RegistryWatchEventKind.Resynced));
        Assert.That(resync.Detail, Does.Contain("lease.teleported"));
    }

    [Test]
    public async Task While_silent_the_watcher_polls_by_snapshot_and_reports_a_restart_it_finds()
    {
        var (source, snapshots, events, time) = Start(snapshots: Snapshot("e1", 3));
        source.Send(Heartbeat("e1", 3));
        await NextAsync(events);
        var silent = events.MoveNextAsync();
        time.Advance(Interval * 3);
        Assert.That(await silent.AsTask().WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(events.Current.Kind, Is.EqualTo(RegistryWatchEventKind.RegistrySilent));

        snapshots.Next.Enqueue(Snapshot("e2", 0));
        var next = events.MoveNextAsync(); // waits for the first poll
        time.Advance(Interval * 6);

        Assert.That(await next.AsTask().WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That((events.Current.Kind, events.Current.Epoch), Is.EqualTo((RegistryWatchEventKind.EpochChanged, "e2")));
        var resync = await NextAsync(events);
        Assert.That((resync.Kind, resync.ResyncReason), Is.EqualTo((RegistryWatchEventKind.Resynced, (RegistryResyncReason?)RegistryResyncReason.EpochChanged)));
    }
}
