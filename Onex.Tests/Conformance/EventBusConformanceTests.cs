using System.Buffers.Binary;
using System.Diagnostics;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Events;

namespace Onex.Tests.Conformance;

/// <summary>
/// The behaviour every <see cref="IEventBus"/> backend must show. A backend's fixture derives from this class and
/// says how to create a fresh logical bus and how to add another participant to it; every test then runs against
/// that backend. "Participant" means one <see cref="IEventBus"/> instance taking part in a logical bus (for a
/// networked backend: another connection or socket set; for in-memory: see that fixture).
/// </summary>
/// <remarks>
/// <para>Every bus, subscription and inbox a test creates through the helpers below is disposed in
/// <see cref="DisposeTestResourcesAsync"/>, newest first. Bus names are unique per test, so fixtures may run
/// side by side. Every wait has a timeout (<see cref="WaitTimeout"/>) and fails saying what did not arrive.</para>
/// <para>Extension point for networked backends: cross-process and peer-restart cases go in an abstract
/// <c>NetworkedEventBusConformanceTests : EventBusConformanceTests</c> that adds the hooks they need (start a
/// participant in a child process, restart a peer) and reuses the protected helpers here; networked fixtures then
/// derive from that class instead of this one.</para>
/// </remarks>
public abstract partial class EventBusConformanceTests
{
    private readonly Stack<IAsyncDisposable> _resources = new();
    private CancellationTokenSource? _testCancellation;

    /// <summary>Creates the first participant of a fresh logical bus named <paramref name="busName"/>.</summary>
    protected abstract ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken);

    /// <summary>Creates another participant on the same logical bus as <paramref name="first"/>.</summary>
    protected abstract ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken);

    /// <summary>The guarantee the backend documents.</summary>
    protected abstract DeliveryGuarantee ExpectedGuarantee { get; }

    /// <summary>
    /// True when the backend honours the drop modes with exact drop counts. When false (at-least-once backends), the
    /// drop-mode tests instead check that nothing is lost overall: every event is eventually read, duplicates allowed.
    /// </summary>
    protected virtual bool SupportsDropModes => true;

    /// <summary>
    /// True when a full Wait-mode subscription holds delivery back until it has room (nothing lost). False for ZeroMQ,
    /// where one receive loop serves every subscription of a participant and must not pause for one: the full
    /// subscription drops and counts instead, so nothing is lost silently.
    /// </summary>
    protected virtual bool WaitModeHoldsBackDelivery => true;

    /// <summary>Payload size of the large-payload round trip.</summary>
    protected virtual int LargePayloadBytes => 1024 * 1024;

    /// <summary>How long any single wait in a test may take before it fails.</summary>
    protected virtual TimeSpan WaitTimeout => TimeSpan.FromSeconds(10);

    /// <summary>Cancelled when the test overruns; pass it to every call that takes a token.</summary>
    protected CancellationToken TestCancellation => _testCancellation?.Token ?? CancellationToken.None;

    [SetUp]
    public void CreateTestCancellation() => _testCancellation = new CancellationTokenSource(WaitTimeout * 6);

    [TearDown]
    public async Task DisposeTestResourcesAsync()
    {
        var failures = new List<Exception>();
        while (_resources.TryPop(out var resource))
        {
            try
            {
                await resource.DisposeAsync().AsTask().WaitAsync(WaitTimeout);
            }
            catch (Exception ex)
            {
                failures.Add(new InvalidOperationException($"Disposing {resource} failed or hung.", ex));
            }
        }
        _testCancellation?.Dispose();
        _testCancellation = null;
        if (failures.Count > 0) throw new AggregateException("Test resources did not dispose cleanly.", failures);
    }

    [Test]
    public async Task Event_published_by_one_participant_reaches_a_subscriber_on_another()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "orders.created");

        await publisher.PublishAsync(OnexEvent.Create("orders.created", "hello"u8.ToArray()), TestCancellation);

        var received = await inbox.WaitForCountAsync(1, WaitTimeout, "the event published by the other participant");
        Assert.That(received[0].Payload.ToArray(), Is.EqualTo("hello"u8.ToArray()), "payload changed in transit");
    }

    [Test]
    public async Task Event_published_reaches_a_subscriber_on_the_same_participant()
    {
        var bus = await NewBusAsync();
        var inbox = await SubscribeInboxAsync(bus, "orders.created");

        await bus.PublishAsync(OnexEvent.Create("orders.created", "self"u8.ToArray()), TestCancellation);

        await inbox.WaitForCountAsync(1, WaitTimeout, "the event published on the same participant");
    }

    [Test]
    public async Task Envelope_fields_arrive_unchanged()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "audit.entry");
        var sent = OnexEvent.Create(
            "audit.entry", new byte[] { 1, 2, 3 }, eventType: "audit.v1", sourceNodeId: "node-a",
            correlationId: "corr-42", headers: new Dictionary<string, string> { ["tenant"] = "t1", ["trace"] = "abc" });

        await publisher.PublishAsync(sent, TestCancellation);

        var got = (await inbox.WaitForCountAsync(1, WaitTimeout, "the event with all envelope fields"))[0];
        Assert.Multiple(() =>
        {
            Assert.That(got.EventId, Is.EqualTo(sent.EventId), "eventId");
            Assert.That(got.Topic, Is.EqualTo(sent.Topic), "topic");
            Assert.That(got.EventType, Is.EqualTo(sent.EventType), "eventType");
            Assert.That(got.SourceNodeId, Is.EqualTo(sent.SourceNodeId), "sourceNodeId");
            Assert.That(got.CorrelationId, Is.EqualTo(sent.CorrelationId), "correlationId");
            Assert.That(got.Timestamp, Is.EqualTo(sent.Timestamp), "timestamp");
            Assert.That(got.Headers, Is.EquivalentTo(sent.Headers), "headers");
            Assert.That(got.Payload.ToArray(), Is.EqualTo(sent.Payload.ToArray()), "payload");
        });
    }

    [Test]
    public async Task Single_token_wildcard_matches_exactly_one_token()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "sensor.*.temp");

        // Publisher order puts misses before the last match, so once it arrives no miss can still be in flight.
        foreach (var topic in new[] { "sensor.a.temp", "sensor.temp", "sensor.a.b.temp", "sensor.a.humidity", "other.a.temp", "sensor.b.temp" })
            await publisher.PublishAsync(OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty), TestCancellation);

        var received = await inbox.WaitForAsync(e => e.Topic == "sensor.b.temp", WaitTimeout, "'sensor.b.temp' (last match)");
        Assert.That(inbox.Snapshot().Select(e => e.Topic), Is.EqualTo(new[] { "sensor.a.temp", received.Topic }),
            "'*' must match exactly one token");
    }

    [Test]
    public async Task Tail_wildcard_matches_one_or_more_trailing_tokens()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "sensor.>");

        foreach (var topic in new[] { "sensor.a", "sensor", "sensor.a.b.c", "sensors.a", "other.sensor.a", "sensor.z" })
            await publisher.PublishAsync(OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty), TestCancellation);

        await inbox.WaitForAsync(e => e.Topic == "sensor.z", WaitTimeout, "'sensor.z' (last match)");
        Assert.That(inbox.Snapshot().Select(e => e.Topic), Is.EqualTo(new[] { "sensor.a", "sensor.a.b.c", "sensor.z" }),
            "'>' must match one or more trailing tokens and nothing else");
    }

    [Test]
    public async Task Events_from_one_publisher_arrive_in_publish_order()
    {
        const int count = 1_000;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "seq.>", new SubscriptionOptions { Capacity = count });

        for (var i = 1; i <= count; i++)
            await publisher.PublishAsync(Numbered("seq.one", i), TestCancellation);

        var received = await inbox.WaitForCountAsync(count, WaitTimeout, $"{count} numbered events");
        Assert.That(received.Select(NumberOf), Is.EqualTo(Enumerable.Range(1, count)), "events arrived out of publish order");
    }

    [Test]
    public async Task Events_from_two_concurrent_publishers_each_arrive_in_their_own_order()
    {
        const int perPublisher = 500;
        var first = await NewBusAsync();
        var second = await JoinAsync(first);
        var subscriber = await JoinAsync(first);
        var inbox = await SubscribeInboxAsync(subscriber, "seq.*", new SubscriptionOptions { Capacity = 2 * perPublisher });

        await Task.WhenAll(PublishNumberedAsync(first, "seq.a", perPublisher), PublishNumberedAsync(second, "seq.b", perPublisher));

        var received = await inbox.WaitForCountAsync(2 * perPublisher, WaitTimeout, $"{perPublisher} events from each of two publishers");
        Assert.Multiple(() =>
        {
            Assert.That(received.Where(e => e.Topic == "seq.a").Select(NumberOf), Is.EqualTo(Enumerable.Range(1, perPublisher)), "publisher A's order");
            Assert.That(received.Where(e => e.Topic == "seq.b").Select(NumberOf), Is.EqualTo(Enumerable.Range(1, perPublisher)), "publisher B's order");
        });
    }

    [Test]
    public async Task Every_matching_subscriber_receives_every_event()
    {
        const int count = 50;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inboxes = new[]
        {
            await SubscribeInboxAsync(subscriber, "fan.out"),
            await SubscribeInboxAsync(subscriber, "fan.*"),
            await SubscribeInboxAsync(publisher, "fan.>"),
        };

        await PublishNumberedAsync(publisher, "fan.out", count);

        foreach (var inbox in inboxes)
        {
            var received = await inbox.WaitForCountAsync(count, WaitTimeout, $"all {count} fanned-out events");
            Assert.That(received.Select(NumberOf), Is.EqualTo(Enumerable.Range(1, count)), $"subscriber '{inbox.Subscription.Pattern}'");
        }
    }

    [Test]
    public async Task Disposed_subscription_receives_nothing_published_after_it()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var leaving = await SubscribeAsync(subscriber, "unsub.>");
        var staying = await SubscribeInboxAsync(subscriber, "unsub.>");
        await publisher.PublishAsync(OnexEvent.Create("unsub.before", ReadOnlyMemory<byte>.Empty), TestCancellation);
        var first = await Within(leaving.Reader.ReadAsync(TestCancellation).AsTask(), "'unsub.before' on the subscription about to leave");
        Assert.That(first.Topic, Is.EqualTo("unsub.before"));

        await leaving.DisposeAsync();
        await publisher.PublishAsync(OnexEvent.Create("unsub.sentinel", ReadOnlyMemory<byte>.Empty), TestCancellation);
        await publisher.PublishAsync(OnexEvent.Create("unsub.marker", ReadOnlyMemory<byte>.Empty), TestCancellation);
        await staying.WaitForAsync(e => e.Topic == "unsub.marker", WaitTimeout, "'unsub.marker' on the remaining subscription");

        var leftOver = new List<string>();
        while (leaving.Reader.TryRead(out var evt)) leftOver.Add(evt.Topic);
        Assert.That(leftOver, Does.Not.Contain("unsub.sentinel"), "an event published after unsubscribing was delivered");
        await Within(leaving.Reader.Completion, "completion of the disposed subscription's reader");
    }

    [Test]
    public async Task Disposing_a_subscription_completes_a_pending_read()
    {
        var bus = await NewBusAsync();
        var subscription = await SubscribeAsync(bus, "idle.topic");
        await using var reading = subscription.GetAsyncEnumerator(TestCancellation);
        var pending = reading.MoveNextAsync().AsTask();
        Assert.That(pending.IsCompleted, Is.False, "the read should wait while nothing was published");

        await subscription.DisposeAsync();

        Assert.That(await Within(pending, "the pending read to finish after the subscription was disposed"), Is.False,
            "the pending read should end the enumeration, not yield an event");
    }

    [Test]
    public async Task Disposing_the_bus_completes_a_pending_read()
    {
        var (_, subscriber) = await CreateParticipantsAsync();
        var subscription = await SubscribeAsync(subscriber, "idle.topic");
        await using var reading = subscription.GetAsyncEnumerator(TestCancellation);
        var pending = reading.MoveNextAsync().AsTask();
        Assert.That(pending.IsCompleted, Is.False, "the read should wait while nothing was published");

        await subscriber.DisposeAsync();

        Assert.That(await Within(pending, "the pending read to finish after its bus was disposed"), Is.False,
            "the pending read should end the enumeration, not yield an event");
    }

    [Test]
    public async Task DropOldest_keeps_the_newest_events_and_counts_the_rest() =>
        await AssertFullModeAsync(BoundedChannelFullMode.DropOldest, (sent, capacity) => Enumerable.Range(sent - capacity + 1, capacity));

    [Test]
    public async Task DropNewest_keeps_the_oldest_and_the_last_event_and_counts_the_rest() =>
        await AssertFullModeAsync(BoundedChannelFullMode.DropNewest, (sent, capacity) => Enumerable.Range(1, capacity - 1).Append(sent));

    [Test]
    public async Task DropWrite_keeps_the_first_events_and_counts_the_rest() =>
        await AssertFullModeAsync(BoundedChannelFullMode.DropWrite, (_, capacity) => Enumerable.Range(1, capacity));

    [Test]
    public async Task Wait_mode_delivers_every_event_through_a_small_queue()
    {
        const int count = 64;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var subscription = await SubscribeAsync(subscriber, "slow.reader", new SubscriptionOptions { Capacity = 4, FullMode = BoundedChannelFullMode.Wait });

        // Not awaited before reading: in Wait mode the publisher may have to wait for this reader.
        var publishing = PublishNumberedAsync(publisher, "slow.reader", count);
        if (!WaitModeHoldsBackDelivery)
        {
            await AssertDeliveredOrCountedAsync(subscription, count, publishing);
            return;
        }
        var received = new List<int>();
        await using (var reading = subscription.GetAsyncEnumerator(TestCancellation))
        {
            while (received.Count < count && await Within(reading.MoveNextAsync().AsTask(), $"event {received.Count + 1} of {count}"))
                received.Add(NumberOf(reading.Current));
        }
        await Within(publishing, "the publisher to finish once everything was read");

        Assert.Multiple(() =>
        {
            Assert.That(received, Is.EqualTo(Enumerable.Range(1, count)), "Wait mode lost or reordered events");
            Assert.That(subscription.DroppedCount, Is.Zero, "Wait mode must never count drops");
        });
    }

    [Test]
    public async Task Large_payload_round_trips_intact()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var inbox = await SubscribeInboxAsync(subscriber, "blob.upload");
        var payload = new byte[LargePayloadBytes];
        new Random(LargePayloadBytes).NextBytes(payload);

        await publisher.PublishAsync(OnexEvent.Create("blob.upload", payload), TestCancellation);

        var received = (await inbox.WaitForCountAsync(1, WaitTimeout, $"the {LargePayloadBytes}-byte event"))[0];
        Assert.That(received.Payload.Span.SequenceEqual(payload), Is.True,
            $"payload of {LargePayloadBytes} bytes arrived as {received.Payload.Length} bytes with different content");
    }

    [Test]
    public async Task Guarantee_is_the_one_the_backend_documents()
    {
        var (first, second) = await CreateParticipantsAsync();

        Assert.Multiple(() =>
        {
            Assert.That(first.Guarantee, Is.EqualTo(ExpectedGuarantee), "first participant");
            Assert.That(second.Guarantee, Is.EqualTo(ExpectedGuarantee), "joined participant");
        });
    }

    [Test]
    public async Task Participants_report_the_logical_bus_name()
    {
        var name = UniqueBusName();
        var first = Track(await CreateBusAsync(name, TestCancellation));
        var second = Track(await JoinBusAsync(first, TestCancellation));

        Assert.Multiple(() =>
        {
            Assert.That(first.Name, Is.EqualTo(name), "first participant");
            Assert.That(second.Name, Is.EqualTo(name), "joined participant");
        });
    }

    [Test]
    public async Task Publishing_after_dispose_throws_ObjectDisposedException()
    {
        var bus = await NewBusAsync();
        await bus.DisposeAsync();

        Assert.That(async () => await bus.PublishAsync(OnexEvent.Create("late.event", ReadOnlyMemory<byte>.Empty)),
            Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task Subscribing_after_dispose_throws_ObjectDisposedException()
    {
        var bus = await NewBusAsync();
        await bus.DisposeAsync();

        Assert.That(async () => await bus.SubscribeAsync("late.>"), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task Disposing_twice_is_harmless()
    {
        var bus = await NewBusAsync();
        var subscription = await bus.SubscribeAsync("twice.>", cancellationToken: TestCancellation);

        await subscription.DisposeAsync();
        await subscription.DisposeAsync();
        await bus.DisposeAsync();

        Assert.That(async () => await bus.DisposeAsync(), Throws.Nothing, "second dispose of the bus");
    }

    [TestCase("")]
    [TestCase("a..b")]
    [TestCase("wild.*")]
    [TestCase("wild.>")]
    public async Task Publishing_to_an_invalid_topic_throws_ArgumentException(string topic)
    {
        var bus = await NewBusAsync();
        var invalid = OnexEvent.Create("valid.topic", ReadOnlyMemory<byte>.Empty) with { Topic = topic };

        Assert.That(async () => await bus.PublishAsync(invalid), Throws.InstanceOf<ArgumentException>());
    }

    [TestCase("")]
    [TestCase("a..b")]
    [TestCase("a.>.b")]
    [TestCase("a b")]
    public async Task Subscribing_to_an_invalid_pattern_throws_ArgumentException(string pattern)
    {
        var bus = await NewBusAsync();

        Assert.That(async () => await bus.SubscribeAsync(pattern), Throws.InstanceOf<ArgumentException>());
    }

    [Test]
    public async Task A_subscription_without_a_full_mode_drops_the_newest_when_full_and_the_participant_is_told()
    {
        const int capacity = 4, sent = 16;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var notices = new System.Collections.Concurrent.ConcurrentQueue<BusNotice>();
        subscriber.Health.Notice += (_, notice) => notices.Enqueue(notice);
        var full = await SubscribeAsync(subscriber, "default.data", new SubscriptionOptions { Capacity = capacity });
        if (ExpectedGuarantee == DeliveryGuarantee.AtLeastOnce)
        {
            // At least once: the default is Wait (the server keeps the backlog), so nothing is dropped.
            await AssertNothingLostAsync(publisher, full, sent, "default.data");
            Assert.That(subscriber.Health.TotalDropped, Is.Zero, "the Wait default drops nothing");
            return;
        }
        var observer = await SubscribeInboxAsync(subscriber, "default.>", new SubscriptionOptions { Capacity = 2 * sent });

        await PublishNumberedAsync(publisher, "default.data", sent);
        await publisher.PublishAsync(OnexEvent.Create("default.end", ReadOnlyMemory<byte>.Empty), TestCancellation);
        await observer.WaitForAsync(e => e.Topic == "default.end", WaitTimeout, "the sentinel after the burst");
        await WaitUntilAsync(() => full.DroppedCount >= sent - capacity, () => $"DroppedCount to reach {sent - capacity}; it is {full.DroppedCount}");

        var kept = new List<int>();
        while (full.Reader.TryRead(out var evt)) kept.Add(NumberOf(evt));
        Assert.Multiple(() =>
        {
            Assert.That(full.DroppedCount, Is.EqualTo(sent - capacity), "drop count");
            Assert.That(kept, Is.EqualTo(new[] { 1, 2, 3, sent }), "DropNewest, as NATS.Net: the newest queued event makes room for the incoming one");
            Assert.That(subscriber.Health.DroppedCount(DropCause.SubscriberQueue), Is.EqualTo(sent - capacity), "the participant's health counts the drops");
            Assert.That(notices.Count(n => n.Kind == BusNoticeKind.SlowConsumer && n.Pattern == "default.data"), Is.EqualTo(1),
                "one slow-consumer notice for the episode");
            Assert.That(notices.Where(n => n.Kind == BusNoticeKind.Dropped).Select(n => n.Total), Is.EqualTo(new long[] { 1, 2, 4, 8 }),
                "drop notices spaced exponentially");
            Assert.That(full.PendingBytes, Is.Zero, "a drained queue holds no bytes");
        });
    }

    [Test]
    public async Task A_stalled_subscription_stays_within_its_byte_limit_and_does_not_hold_up_another()
    {
        const int sent = 200, payloadBytes = 16 * 1024;
        const long limit = 256 * 1024;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var stalled = await SubscribeAsync(subscriber, "stall.data",
            new SubscriptionOptions { Capacity = 100_000, MaxPendingBytes = limit, FullMode = BoundedChannelFullMode.DropNewest });
        var fast = await SubscribeInboxAsync(subscriber, "stall.data", new SubscriptionOptions { Capacity = 2 * sent });

        var payload = new byte[payloadBytes];
        for (var i = 1; i <= sent; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(payload, i);
            await publisher.PublishAsync(OnexEvent.Create("stall.data", payload.ToArray()), TestCancellation);
        }
        var received = await fast.WaitUntilAsync(events => events.Select(NumberOf).Distinct().Count() >= sent, WaitTimeout,
            $"all {sent} events at the subscription that reads while another is stalled");
        await WaitUntilAsync(() => stalled.DroppedCount > 0, () => "the stalled subscription to drop");

        var oneEvent = EventChannel.PendingSize(received[0]);
        Assert.Multiple(() =>
        {
            Assert.That(stalled.PendingBytes, Is.LessThanOrEqualTo(limit),
                $"the stalled subscription holds at most its byte limit ({limit}; one event counts {oneEvent})");
            Assert.That(stalled.PendingBytes, Is.GreaterThan(limit - 2 * oneEvent), "it holds what fits, no less");
            Assert.That(subscriber.Health.DroppedCount(DropCause.SubscriberQueue), Is.GreaterThanOrEqualTo(stalled.DroppedCount), "counted in the participant's health");
            if (ExpectedGuarantee == DeliveryGuarantee.AtMostOnceOrdered)
                Assert.That(received.Select(NumberOf), Is.EqualTo(Enumerable.Range(1, sent)), "the reading subscription got every event, in order");
        });
    }

    /// <summary>
    /// Publishes more than the queue holds to a subscriber that is not reading, waits until the subscription has
    /// handled every event (an observer subscription sees a sentinel, then the drop count reaches sent - capacity),
    /// and checks which events the mode kept. Exact for networked backends too: nothing is read until all are in.
    /// </summary>
    private async Task AssertFullModeAsync(BoundedChannelFullMode mode, Func<int, int, IEnumerable<int>> expectedKept)
    {
        const int capacity = 4, sent = 16;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var full = await SubscribeAsync(subscriber, "drop.data", new SubscriptionOptions { Capacity = capacity, FullMode = mode });
        if (!SupportsDropModes)
        {
            await AssertNothingLostAsync(publisher, full, sent);
            return;
        }
        var observer = await SubscribeInboxAsync(subscriber, "drop.>", new SubscriptionOptions { Capacity = 2 * sent });

        await PublishNumberedAsync(publisher, "drop.data", sent);
        await publisher.PublishAsync(OnexEvent.Create("drop.end", ReadOnlyMemory<byte>.Empty), TestCancellation);
        await observer.WaitForAsync(e => e.Topic == "drop.end", WaitTimeout, "the sentinel after the burst");
        await WaitUntilAsync(() => full.DroppedCount >= sent - capacity,
            () => $"{mode}: DroppedCount to reach {sent - capacity} after {sent} events into capacity {capacity}; it is {full.DroppedCount}");

        var kept = new List<int>();
        while (full.Reader.TryRead(out var evt)) kept.Add(NumberOf(evt));
        Assert.Multiple(() =>
        {
            Assert.That(full.DroppedCount, Is.EqualTo(sent - capacity), $"{mode}: drop count");
            Assert.That(kept, Is.EqualTo(expectedKept(sent, capacity)), $"{mode}: events kept in the queue");
        });
    }

    /// <summary>Reads until every one of <paramref name="sent"/> events was either read (in order) or counted as dropped.</summary>
    private async Task AssertDeliveredOrCountedAsync(IEventSubscription subscription, int sent, Task publishing)
    {
        await Within(publishing, "the publisher to finish");
        var received = new List<int>();
        while (received.Count + subscription.DroppedCount < sent)
        {
            using var poll = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
            try
            {
                received.Add(NumberOf(await subscription.Reader.ReadAsync(poll.Token)));
            }
            catch (OperationCanceledException) when (poll.IsCancellationRequested && !TestCancellation.IsCancellationRequested)
            {
                // Nothing queued right now: look at the counters again.
            }
            TestCancellation.ThrowIfCancellationRequested();
        }
        Assert.Multiple(() =>
        {
            Assert.That(received.Count + subscription.DroppedCount, Is.EqualTo(sent), "every event read or counted as dropped");
            Assert.That(received, Is.Ordered.Ascending, "what was read kept its order");
        });
    }

    /// <summary>The at-least-once statement of the full-mode tests: every event is eventually read, duplicates allowed.</summary>
    private async Task AssertNothingLostAsync(IEventBus publisher, IEventSubscription subscription, int sent, string topic = "drop.data")
    {
        await PublishNumberedAsync(publisher, topic, sent);
        var seen = new HashSet<int>();
        await using var reading = subscription.GetAsyncEnumerator(TestCancellation);
        while (seen.Count < sent && await Within(reading.MoveNextAsync().AsTask(), $"all {sent} events (have {seen.Count} distinct)"))
            seen.Add(NumberOf(reading.Current));
        Assert.That(seen, Is.EquivalentTo(Enumerable.Range(1, sent)), "an at-least-once backend lost events");
    }

    /// <summary>A bus name no other test uses: lowercase letters, digits and dashes.</summary>
    protected static string UniqueBusName() => "conf-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>Registers <paramref name="resource"/> for disposal after the test.</summary>
    protected T Track<T>(T resource) where T : IAsyncDisposable
    {
        _resources.Push(resource);
        return resource;
    }

    /// <summary>A fresh logical bus with a unique name (first participant), disposed after the test.</summary>
    protected async Task<IEventBus> NewBusAsync() => Track(await CreateBusAsync(UniqueBusName(), TestCancellation));

    /// <summary>Another participant of <paramref name="first"/>'s bus, disposed after the test.</summary>
    protected async Task<IEventBus> JoinAsync(IEventBus first) => Track(await JoinBusAsync(first, TestCancellation));

    /// <summary>A fresh bus with two participants.</summary>
    protected async Task<(IEventBus First, IEventBus Second)> CreateParticipantsAsync()
    {
        var first = await NewBusAsync();
        return (first, await JoinAsync(first));
    }

    /// <summary>Subscribes and registers the subscription for disposal after the test.</summary>
    protected async Task<IEventSubscription> SubscribeAsync(IEventBus bus, string pattern, SubscriptionOptions? options = null) =>
        Track(await bus.SubscribeAsync(pattern, options, TestCancellation));

    /// <summary>Subscribes and starts reading in the background.</summary>
    protected async Task<EventInbox> SubscribeInboxAsync(IEventBus bus, string pattern, SubscriptionOptions? options = null) =>
        Track(EventInbox.Start(await SubscribeAsync(bus, pattern, options)));

    /// <summary>Publishes events numbered 1..<paramref name="count"/> to <paramref name="topic"/>, one after another.</summary>
    protected async Task PublishNumberedAsync(IEventBus bus, string topic, int count)
    {
        for (var i = 1; i <= count; i++)
            await bus.PublishAsync(Numbered(topic, i), TestCancellation);
    }

    /// <summary>An event whose payload is <paramref name="number"/> (int32, little-endian).</summary>
    protected static OnexEvent Numbered(string topic, int number)
    {
        var payload = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(payload, number);
        return OnexEvent.Create(topic, payload);
    }

    /// <summary>The number carried by an event made with <see cref="Numbered"/>.</summary>
    protected static int NumberOf(OnexEvent evt) => BinaryPrimitives.ReadInt32LittleEndian(evt.Payload.Span);

    /// <summary>Awaits <paramref name="task"/>, failing the test with <paramref name="what"/> after <see cref="WaitTimeout"/>.</summary>
    protected async Task<T> Within<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(WaitTimeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"Timed out after {WaitTimeout.TotalSeconds:0.#}s waiting for {what}.");
            throw;
        }
    }

    /// <summary>Awaits <paramref name="task"/>, failing the test with <paramref name="what"/> after <see cref="WaitTimeout"/>.</summary>
    protected async Task Within(Task task, string what)
    {
        try
        {
            await task.WaitAsync(WaitTimeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"Timed out after {WaitTimeout.TotalSeconds:0.#}s waiting for {what}.");
        }
    }

    /// <summary>
    /// Polls <paramref name="condition"/> (for state with nothing to await, such as a drop counter) until it holds,
    /// failing with <paramref name="what"/> after <see cref="WaitTimeout"/>.
    /// </summary>
    protected async Task WaitUntilAsync(Func<bool> condition, Func<string> what)
    {
        var elapsed = Stopwatch.StartNew();
        while (!condition())
        {
            if (elapsed.Elapsed > WaitTimeout) Assert.Fail($"Timed out after {WaitTimeout.TotalSeconds:0.#}s waiting for {what()}.");
            await Task.Delay(TimeSpan.FromMilliseconds(5), TestCancellation);
        }
    }
}
