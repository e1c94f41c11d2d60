using Microsoft.Extensions.Logging.Abstractions;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Http;
using Onex.RegistryNode.Metrics;

namespace Onex.Tests.Http;

/// <summary>The HTTP side's view: sequence rules, resync, and the bound on each SSE client's queue.</summary>
public class RegistryViewTests
{
    private static RegistryChange Granted(long sequence, string epoch = "e1") => new()
    {
        Epoch = epoch,
        Sequence = sequence,
        ChangeType = ChangeTypes.LeaseGranted,
        Key = $"lease-{sequence}",
        NewValue = new RegistryEntity { Lease = new PortLease { LeaseId = $"lease-{sequence}", Host = "127.0.0.1", NodeId = "n1", Port = 20000 + (int)sequence } },
    };

    private sealed class SnapshotSource(Func<RegistrySnapshot> current)
    {
        public int Taken;

        public Task<RegistrySnapshot> TakeAsync(CancellationToken ct)
        {
            Interlocked.Increment(ref Taken);
            return Task.FromResult(current());
        }
    }

    [Test]
    public async Task A_client_that_falls_a_whole_buffer_behind_is_disconnected_and_others_keep_their_stream()
    {
        using var metrics = new RegistryMetrics();
        var source = new SnapshotSource(() => new RegistrySnapshot { Epoch = "e1", Sequence = 0 });
        await using var view = new RegistryView(source.TakeAsync, metrics, TimeProvider.System, NullLogger.Instance);
        view.Start();
        await view.Synced.WaitAsync(HttpTestClient.Wait);
        var slow = view.Join(null)!;
        IChangeSink sink = view;

        // The snapshot event holds one slot; one change more than the rest of the buffer overflows it.
        for (var sequence = 1; sequence <= RegistryView.ClientBufferEvents; sequence++) sink.Publish(Granted(sequence));

        await slow.Closed.WaitAsync(HttpTestClient.Wait);
        Assert.That(slow.Events.Count, Is.EqualTo(RegistryView.ClientBufferEvents), "the slow client keeps what it had queued, then its stream ends");

        var late = view.Join(null)!;
        Assert.That(late.Events.TryRead(out var first), Is.True);
        Assert.That(first!.Name, Is.EqualTo("snapshot"));
        Assert.That(view.Current!.Sequence, Is.EqualTo(RegistryView.ClientBufferEvents), "the view itself applied every change");
        Assert.That(view.Current.Leases, Has.Count.EqualTo(RegistryView.ClientBufferEvents));
    }

    [Test]
    public async Task A_gap_in_the_sequence_makes_the_view_resync_by_snapshot()
    {
        using var metrics = new RegistryMetrics();
        var registryAt = 0L;
        var source = new SnapshotSource(() => new RegistrySnapshot { Epoch = "e1", Sequence = Interlocked.Read(ref registryAt) });
        await using var view = new RegistryView(source.TakeAsync, metrics, TimeProvider.System, NullLogger.Instance);
        view.Start();
        await view.Synced.WaitAsync(HttpTestClient.Wait);
        var client = view.Join(null)!;
        Assert.That(client.Events.TryRead(out _), Is.True, "the initial snapshot");
        IChangeSink sink = view;

        sink.Publish(Granted(1));
        Interlocked.Exchange(ref registryAt, 3);
        sink.Publish(Granted(3)); // 2 never arrives

        var events = new List<string>();
        while (events.Count < 2) events.Add((await client.Events.ReadAsync().AsTask().WaitAsync(HttpTestClient.Wait)).Name);
        Assert.That(events, Is.EqualTo(new[] { "change", "snapshot" }), "change 1 applies; the gap before 3 is answered by a snapshot, never skipped");
        Assert.That(view.Current!.Sequence, Is.EqualTo(3));
        Assert.That(source.Taken, Is.EqualTo(2));
    }

    [Test]
    public async Task Changes_applied_in_one_batch_give_the_same_state_as_applied_one_by_one()
    {
        using var metrics = new RegistryMetrics();
        var source = new SnapshotSource(() => new RegistrySnapshot { Epoch = "e1", Sequence = 0 });
        await using var view = new RegistryView(source.TakeAsync, metrics, TimeProvider.System, NullLogger.Instance);
        view.Start();
        await view.Synced.WaitAsync(HttpTestClient.Wait);
        IChangeSink sink = view;
        var sequence = 0L;
        RegistryChange Change(string type, string key, RegistryEntity? oldValue, RegistryEntity? newValue) =>
            new() { Epoch = "e1", Sequence = ++sequence, ChangeType = type, Key = key, OldValue = oldValue, NewValue = newValue, Timestamp = 1000 + sequence };
        RegistryEntity Lease(int n) => new() { Lease = new PortLease { LeaseId = $"L{n}", Host = "127.0.0.1", NodeId = "n1", Port = 20000 + n } };
        RegistryEntity Node(string health) => new() { Node = new NodeRecord { NodeId = "n1", Health = health } };
        RegistryEntity Bus() => new() { Bus = new EventBusRecord { Name = "b1", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = "n1" } };

        // One batch: everything is queued before anything reads the view.
        sink.Publish(Change(ChangeTypes.NodeRegistered, "n1", null, Node(Health.Healthy)));
        for (var n = 1; n <= 5; n++) sink.Publish(Change(ChangeTypes.LeaseGranted, $"L{n}", null, Lease(n)));
        sink.Publish(Change(ChangeTypes.LeaseReleased, "L2", Lease(2), null));
        sink.Publish(Change(ChangeTypes.BusRegistered, "b1", null, Bus()));
        sink.Publish(Change(ChangeTypes.NodeUnhealthy, "n1", Node(Health.Healthy), Node(Health.Unhealthy)));
        var first = view.Current!;
        Assert.That(first.Sequence, Is.EqualTo(9), "the whole batch is applied by one read");
        Assert.That(first.TakenAt, Is.EqualTo(1009), "the version is stamped with its latest change");
        Assert.That(first.Leases.Keys, Is.EqualTo(new[] { "L1", "L3", "L4", "L5" }));
        Assert.That(first.Nodes["n1"].Health, Is.EqualTo(Health.Unhealthy));
        Assert.That(first.Buses.Keys, Is.EqualTo(new[] { "b1" }));

        // A second batch starts from the first version and leaves it as it was (readers may still hold it).
        sink.Publish(Change(ChangeTypes.LeaseReleased, "L1", Lease(1), null));
        sink.Publish(Change(ChangeTypes.LeaseGranted, "L6", null, Lease(6)));
        sink.Publish(Change(ChangeTypes.BusRemoved, "b1", Bus(), null));
        var second = view.Current!;
        Assert.That(second.Sequence, Is.EqualTo(12));
        Assert.That(second.Leases.Keys, Is.EqualTo(new[] { "L3", "L4", "L5", "L6" }));
        Assert.That(second.Buses, Is.Empty);
        Assert.That(first.Leases.Keys, Is.EqualTo(new[] { "L1", "L3", "L4", "L5" }), "an earlier version never changes");
        Assert.That(first.Buses.Keys, Is.EqualTo(new[] { "b1" }));
        Assert.That(view.Current, Is.SameAs(second), "with nothing queued, a read returns the same version");
        Assert.That(source.Taken, Is.EqualTo(1), "no resync");
    }
}
