using System.Threading.Channels;
using Onex.Bus;
using static Onex.Tests.InMemory.TestEvents;

namespace Onex.Tests.InMemory;

/// <summary>The subscription building block every backend delivers into.</summary>
public class EventChannelTests
{
    [Test]
    public void TryWrite_refuses_when_a_Wait_queue_is_full()
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 1, FullMode = BoundedChannelFullMode.Wait });

        Assert.Multiple(() =>
        {
            Assert.That(channel.TryWrite(Numbered("a.b", 1)), Is.True, "first write into an empty queue");
            Assert.That(channel.TryWrite(Numbered("a.b", 2)), Is.False, "a full Wait queue must send the writer to WriteAsync");
            Assert.That(channel.DroppedCount, Is.Zero);
        });
    }

    [TestCase(BoundedChannelFullMode.DropOldest)]
    [TestCase(BoundedChannelFullMode.DropNewest)]
    [TestCase(BoundedChannelFullMode.DropWrite)]
    public void TryWrite_into_a_full_drop_mode_queue_succeeds_and_counts_one_drop(BoundedChannelFullMode mode)
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 1, FullMode = mode });
        channel.TryWrite(Numbered("a.b", 1));

        Assert.Multiple(() =>
        {
            Assert.That(channel.TryWrite(Numbered("a.b", 2)), Is.True, $"{mode} takes the write");
            Assert.That(channel.DroppedCount, Is.EqualTo(1), $"{mode} drop count");
            Assert.That(channel.Reader.Count, Is.EqualTo(1), "the queue stays at capacity");
        });
    }

    [Test]
    public async Task WriteAsync_returns_false_once_the_queue_is_completed()
    {
        var channel = new EventChannel("a.b");
        channel.TryComplete();

        Assert.That(await channel.WriteAsync(Numbered("a.b", 1)), Is.False);
    }

    [Test]
    public async Task WriteAsync_waiting_for_room_returns_false_when_the_subscription_is_disposed()
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 1, FullMode = BoundedChannelFullMode.Wait });
        channel.TryWrite(Numbered("a.b", 1));
        var waiting = channel.WriteAsync(Numbered("a.b", 2)).AsTask();
        Assert.That(waiting.IsCompleted, Is.False, "the writer should wait for room");

        await channel.DisposeAsync();

        Assert.That(await waiting.WaitAsync(WaitLimit), Is.False, "a released writer reports the event was not delivered");
    }

    [Test]
    public async Task WriteAsync_waiting_for_room_completes_when_the_reader_makes_room()
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 1, FullMode = BoundedChannelFullMode.Wait });
        channel.TryWrite(Numbered("a.b", 1));
        var waiting = channel.WriteAsync(Numbered("a.b", 2)).AsTask();

        Assert.That(channel.Reader.TryRead(out _), Is.True);

        Assert.That(await waiting.WaitAsync(WaitLimit), Is.True, "the waiting write should go in once there is room");
        Assert.That(DrainNumbers(channel.Reader), Is.EqualTo(new[] { 2 }));
    }

    [Test]
    public async Task Dispose_runs_the_unsubscribe_hook_once_after_completing_the_queue()
    {
        var calls = 0;
        var completedWhenCalled = false;
        var channel = new EventChannel("a.b", onUnsubscribe: c =>
        {
            calls++;
            completedWhenCalled = c.IsCompleted;
            return ValueTask.CompletedTask;
        });

        await channel.DisposeAsync();
        await channel.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(calls, Is.EqualTo(1), "the hook must run exactly once");
            Assert.That(completedWhenCalled, Is.True, "the queue should be completed before the owner is told");
        });
    }

    [Test]
    public void Completing_with_an_error_surfaces_it_to_the_reader_after_the_queued_events()
    {
        var channel = new EventChannel("a.b");
        channel.TryWrite(Numbered("a.b", 1));
        var failure = new InvalidOperationException("transport lost");

        channel.TryComplete(failure);

        var received = new List<int>();
        var thrown = Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (var evt in channel) received.Add(NumberOf(evt));
        });
        Assert.Multiple(() =>
        {
            Assert.That(received, Is.EqualTo(new[] { 1 }), "queued events are still read first");
            Assert.That(thrown, Is.SameAs(failure));
        });
    }

    [Test]
    public async Task Cancelling_an_enumeration_throws_OperationCanceledException_and_leaves_the_subscription_live()
    {
        var channel = new EventChannel("a.b");
        using var cancel = new CancellationTokenSource();
        var enumeration = channel.GetAsyncEnumerator(cancel.Token);
        var pending = enumeration.MoveNextAsync().AsTask();

        await cancel.CancelAsync();

        Assert.That(async () => await pending.WaitAsync(WaitLimit), Throws.InstanceOf<OperationCanceledException>());
        await enumeration.DisposeAsync();
        channel.TryWrite(Numbered("a.b", 7));
        await using var again = channel.GetAsyncEnumerator();
        Assert.That(await again.MoveNextAsync().AsTask().WaitAsync(WaitLimit), Is.True, "a new enumeration should still read");
        Assert.That(NumberOf(again.Current), Is.EqualTo(7));
    }

    [Test]
    public void Without_a_full_mode_the_queue_drops_the_newest_or_waits_as_its_backend_says()
    {
        Assert.Multiple(() =>
        {
            Assert.That(new EventChannel("a.b").FullMode, Is.EqualTo(BoundedChannelFullMode.DropNewest), "the at-most-once default, as NATS.Net");
            Assert.That(new EventChannel("a.b", defaultFullMode: BoundedChannelFullMode.Wait).FullMode, Is.EqualTo(BoundedChannelFullMode.Wait), "a backend's own default");
            Assert.That(new EventChannel("a.b", new SubscriptionOptions { FullMode = BoundedChannelFullMode.DropOldest }, defaultFullMode: BoundedChannelFullMode.Wait).FullMode,
                Is.EqualTo(BoundedChannelFullMode.DropOldest), "the subscriber's choice wins");
        });
    }

    [TestCase(BoundedChannelFullMode.DropNewest)]
    [TestCase(BoundedChannelFullMode.DropWrite)]
    public void At_the_byte_limit_the_incoming_event_is_dropped_counted_and_reported_once_per_episode(BoundedChannelFullMode mode)
    {
        var size = EventChannel.PendingSize(Sized(1, 1000));
        var health = new EventBusHealth();
        var notices = new List<BusNotice>();
        health.Notice += (_, notice) => notices.Add(notice);
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 100, MaxPendingBytes = 3 * size, FullMode = mode }, health: health);

        for (var i = 1; i <= 5; i++) Assert.That(channel.TryWrite(Sized(i, 1000)), Is.True, $"{mode} takes every write");
        Assert.Multiple(() =>
        {
            Assert.That(channel.PendingBytes, Is.EqualTo(3 * size), "three events fit the byte limit");
            Assert.That(channel.DroppedCount, Is.EqualTo(2));
            Assert.That(health.DroppedCount(DropCause.SubscriberQueue), Is.EqualTo(2));
            Assert.That(notices.Count(n => n.Kind == BusNoticeKind.SlowConsumer), Is.EqualTo(1), "one slow-consumer notice per episode");
        });

        Assert.That(DrainNumbers(channel.Reader), Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(channel.PendingBytes, Is.Zero, "reading gives the bytes back");
        channel.TryWrite(Sized(6, 1000));
        channel.TryWrite(Sized(7, 1000));
        channel.TryWrite(Sized(8, 1000));
        channel.TryWrite(Sized(9, 1000));
        Assert.That(notices.Count(n => n.Kind == BusNoticeKind.SlowConsumer), Is.EqualTo(2), "a new episode after the queue drained");
    }

    [Test]
    public void At_the_byte_limit_DropOldest_evicts_from_the_oldest_until_the_new_event_fits()
    {
        var size = EventChannel.PendingSize(Sized(1, 1000));
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 100, MaxPendingBytes = 3 * size, FullMode = BoundedChannelFullMode.DropOldest });

        for (var i = 1; i <= 3; i++) channel.TryWrite(Sized(i, 1000));
        channel.TryWrite(Sized(4, 1800));

        Assert.Multiple(() =>
        {
            Assert.That(channel.DroppedCount, Is.EqualTo(2), "two of the small ones make room for the big one");
            Assert.That(channel.PendingBytes, Is.LessThanOrEqualTo(3 * size));
            Assert.That(DrainNumbers(channel.Reader), Is.EqualTo(new[] { 3, 4 }));
        });
    }

    [Test]
    public async Task At_the_byte_limit_a_Wait_writer_waits_until_the_reader_frees_enough_bytes()
    {
        var size = EventChannel.PendingSize(Sized(1, 1000));
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 100, MaxPendingBytes = 2 * size, FullMode = BoundedChannelFullMode.Wait });
        channel.TryWrite(Sized(1, 1000));
        channel.TryWrite(Sized(2, 1000));

        Assert.That(channel.TryWrite(Sized(3, 1000)), Is.False, "full in bytes: the writer must wait");
        var waiting = channel.WriteAsync(Sized(3, 1000)).AsTask();
        Assert.That(waiting.IsCompleted, Is.False, "the writer waits for bytes, not for a slot");

        Assert.That(channel.Reader.TryRead(out _), Is.True);

        Assert.That(await waiting.WaitAsync(WaitLimit), Is.True, "the waiting write goes in once the bytes are free");
        Assert.Multiple(() =>
        {
            Assert.That(DrainNumbers(channel.Reader), Is.EqualTo(new[] { 2, 3 }));
            Assert.That(channel.DroppedCount, Is.Zero);
        });
    }

    [Test]
    public void An_event_larger_than_the_byte_limit_still_goes_into_an_empty_queue()
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { MaxPendingBytes = 100, FullMode = BoundedChannelFullMode.Wait });

        Assert.That(channel.TryWrite(Sized(1, 5000)), Is.True, "never stuck behind its own size");
        Assert.That(channel.TryWrite(Sized(2, 10)), Is.False, "but nothing more fits after it");
    }

    private static Onex.Events.OnexEvent Sized(int number, int bytes)
    {
        var payload = new byte[bytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(payload, number);
        return Onex.Events.OnexEvent.Create("a.b", payload, sourceNodeId: "test");
    }

    // The queue is a ring of its own: these pin which events a full queue keeps, across wrap-around, and its byte figure.
    [TestCase(BoundedChannelFullMode.DropNewest, new[] { 3, 4, 7 })]
    [TestCase(BoundedChannelFullMode.DropOldest, new[] { 5, 6, 7 })]
    [TestCase(BoundedChannelFullMode.DropWrite, new[] { 3, 4, 5 })]
    public void At_the_event_limit_each_drop_mode_keeps_its_events_in_order_after_the_ring_wrapped(BoundedChannelFullMode mode, int[] kept)
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 3, FullMode = mode });
        for (var i = 1; i <= 2; i++) channel.TryWrite(Numbered("a.b", i));
        var readEarly = new List<int>();
        while (channel.Reader.TryRead(out var evt)) readEarly.Add(NumberOf(evt));
        for (var i = 3; i <= 7; i++) Assert.That(channel.TryWrite(Numbered("a.b", i)), Is.True, $"{mode} takes event {i}");

        var size = EventChannel.PendingSize(Numbered("a.b", 3));
        Assert.Multiple(() =>
        {
            Assert.That(readEarly, Is.EqualTo(new[] { 1, 2 }));
            Assert.That(channel.DroppedCount, Is.EqualTo(2), "five events into three free places");
            Assert.That(channel.Reader.Count, Is.EqualTo(3));
            Assert.That(channel.PendingBytes, Is.EqualTo(3 * size), "the bytes of the kept events, not of the dropped ones");
        });
        var queued = new List<int>();
        while (channel.Reader.TryRead(out var evt)) queued.Add(NumberOf(evt));
        Assert.Multiple(() =>
        {
            Assert.That(queued, Is.EqualTo(kept), $"{mode} keeps these, oldest first");
            Assert.That(channel.PendingBytes, Is.Zero, "reading gives every byte back");
        });
    }

    [Test]
    public void A_queue_that_grows_past_its_first_allocation_keeps_every_event_in_order()
    {
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 500, FullMode = BoundedChannelFullMode.Wait });
        var received = new List<int>();
        for (var i = 0; i < 50; i++) channel.TryWrite(Numbered("a.b", i));
        for (var i = 0; i < 30 && channel.Reader.TryRead(out var evt); i++) received.Add(NumberOf(evt));
        for (var i = 50; i < 540; i++) channel.TryWrite(Numbered("a.b", i));
        var peeked = channel.Reader.TryPeek(out var next);
        Assert.Multiple(() =>
        {
            Assert.That(channel.Reader.Count, Is.EqualTo(500), "filled up to its capacity across growth and wrap-around");
            Assert.That(peeked && NumberOf(next!) == 30, Is.True, "the oldest unread event is next");
        });
        while (channel.Reader.TryRead(out var evt)) received.Add(NumberOf(evt));
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, 530)), "Wait mode refused the writes past capacity, dropped none, and kept the order");
    }

    [Test]
    public async Task Concurrent_writers_and_a_reader_account_for_every_event_as_read_or_dropped()
    {
        var health = new EventBusHealth();
        var channel = new EventChannel("a.b", new SubscriptionOptions { Capacity = 16, FullMode = BoundedChannelFullMode.DropNewest }, health: health);
        const int writers = 4, perWriter = 20_000;
        var read = 0L;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in channel) read++;
        });
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < perWriter; i++) channel.TryWrite(Numbered("a.b", i));
        })));
        channel.TryComplete();
        await reader.WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Multiple(() =>
        {
            Assert.That(read + channel.DroppedCount, Is.EqualTo(writers * perWriter), "every event was read or counted as dropped");
            Assert.That(health.DroppedCount(DropCause.SubscriberQueue), Is.EqualTo(channel.DroppedCount), "the bus counts the same drops");
            Assert.That(channel.PendingBytes, Is.Zero);
            Assert.That(channel.Reader.Completion.IsCompletedSuccessfully, Is.True, "the reader's completion follows the drained queue");
        });
    }

    [Test]
    public void The_readers_completion_waits_for_the_queue_to_drain_and_carries_the_error()
    {
        var channel = new EventChannel("a.b");
        channel.TryWrite(Numbered("a.b", 1));
        var failure = new InvalidOperationException("transport lost");

        channel.TryComplete(failure);
        var beforeDrain = channel.Reader.Completion.IsCompleted;
        channel.Reader.TryRead(out _);

        Assert.Multiple(() =>
        {
            Assert.That(beforeDrain, Is.False, "an event is still queued");
            Assert.That(channel.Reader.Completion.IsFaulted, Is.True);
            Assert.That(channel.Reader.Completion.Exception?.InnerException, Is.SameAs(failure));
        });
    }

    [Test]
    public void Capacity_below_one_is_rejected()
    {
        Assert.That(() => new EventChannel("a.b", new SubscriptionOptions { Capacity = 0 }),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Capacity"));
    }

    [Test]
    public void Invalid_pattern_is_rejected()
    {
        Assert.That(() => new EventChannel("a..b"), Throws.ArgumentException.With.Message.Contains("not a valid topic pattern"));
    }

    [TestCase("orders.*", "orders.created", true)]
    [TestCase("orders.*", "orders.created.eu", false)]
    [TestCase("orders.>", "orders.created.eu", true)]
    public void Matches_follows_the_pattern(string pattern, string topic, bool expected)
    {
        Assert.That(new EventChannel(pattern).Matches(topic), Is.EqualTo(expected));
    }
}
