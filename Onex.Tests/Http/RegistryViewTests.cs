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
}
