using System.Diagnostics;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Diagnostics;
using Onex.Events;
using Onex.Tests.Diagnostics;

namespace Onex.Tests.Conformance;

/// <summary>Tracing and metrics (the <c>Onex.Bus</c> activity source and meter): the same on every backend.</summary>
public abstract partial class EventBusConformanceTests
{
    [Test]
    public async Task The_receive_span_on_another_participant_is_a_child_of_the_publish_span()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var topic = $"traced.t{Guid.NewGuid():N}";
        using var spans = new SpanRecorder(OnexBusDiagnostics.Name, topic);
        var inbox = await SubscribeInboxAsync(subscriber, topic);

        await publisher.PublishAsync(OnexEvent.Create(topic, "traced"u8.ToArray()), TestCancellation);

        var got = (await inbox.WaitForCountAsync(1, WaitTimeout, "the traced event"))[0];
        await WaitUntilAsync(() => spans.Stopped.Count(s => s.Kind == ActivityKind.Consumer) >= 1, () => "the receive span to stop");
        var publish = spans.Stopped.Single(s => s.Kind == ActivityKind.Producer);
        var receive = spans.Stopped.Single(s => s.Kind == ActivityKind.Consumer);
        Assert.Multiple(() =>
        {
            Assert.That(publish.DisplayName, Is.EqualTo("publish " + topic), "producer span name");
            Assert.That(got.Headers.GetValueOrDefault(OnexBusDiagnostics.TraceParentHeader),
                Is.EqualTo(OnexBusDiagnostics.FormatTraceParent(publish.Context)), "the event carries the producer span's traceparent");
            Assert.That(receive.TraceId, Is.EqualTo(publish.TraceId), "one trace from producer to consumer");
            Assert.That(receive.ParentSpanId, Is.EqualTo(publish.SpanId), "the consumer span's parent is the producer span");
            Assert.That(receive.GetTagItem("messaging.destination.name"), Is.EqualTo(topic), "destination tag");
            Assert.That(receive.GetTagItem("onex.bus.name"), Is.EqualTo(subscriber.Name), "bus tag");
        });
    }

    [Test]
    public async Task A_publish_inside_an_application_span_continues_its_trace_and_leaves_it_current()
    {
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var topic = $"traced.t{Guid.NewGuid():N}";
        using var spans = new SpanRecorder(OnexBusDiagnostics.Name, topic);
        var inbox = await SubscribeInboxAsync(subscriber, topic);
        using var application = new Activity("application work").Start();

        await publisher.PublishAsync(OnexEvent.Create(topic, "in a span"u8.ToArray()), TestCancellation);

        await inbox.WaitForCountAsync(1, WaitTimeout, "the event published inside an application span");
        await WaitUntilAsync(() => spans.Stopped.Any(s => s.Kind == ActivityKind.Consumer), () => "the receive span to stop");
        var publish = spans.Stopped.Single(s => s.Kind == ActivityKind.Producer);
        Assert.Multiple(() =>
        {
            Assert.That(publish.ParentSpanId, Is.EqualTo(application.SpanId), "the publish span is a child of the application's span");
            Assert.That(Activity.Current, Is.SameAs(application), "publishing does not change the caller's current activity");
        });
    }

    [Test]
    public async Task The_bus_meter_reports_events_queued_unread_in_subscriptions_as_queue_depth()
    {
        const int count = 7;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        var unread = await SubscribeAsync(subscriber, "depth.data", new SubscriptionOptions { Capacity = 4 * count });

        for (var i = 0; i < count; i++)
            await publisher.PublishAsync(OnexEvent.Create("depth.data", new byte[10]), TestCancellation);
        await WaitUntilAsync(() => unread.Reader.Count >= count, () => $"{count} events queued in the subscription (it holds {unread.Reader.Count})");

        Assert.That(ObserveQueueDepth(subscriber.Name, BusQueueDepth.Subscription), Is.EqualTo(count),
            "onex.bus.queue.depth of the subscriber's bus: the events queued and not read");
        for (var i = 0; i < 3; i++) Assert.That(unread.Reader.TryRead(out _), Is.True);
        Assert.That(ObserveQueueDepth(subscriber.Name, BusQueueDepth.Subscription), Is.EqualTo(count - 3), "reading lowers the depth");
        await unread.DisposeAsync();
        Assert.That(ObserveQueueDepth(subscriber.Name, BusQueueDepth.Subscription), Is.Zero, "a closed subscription is no longer reported");
    }

    /// <summary>One observation of <c>onex.bus.queue.depth</c> for <paramref name="bus"/> and <paramref name="queue"/> (0 when none).</summary>
    private static long ObserveQueueDepth(string bus, string queue)
    {
        long depth = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == OnexBusDiagnostics.Name && instrument.Name == "onex.bus.queue.depth") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? busTag = null, queueTag = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "bus") busTag = tag.Value as string;
                else if (tag.Key == "queue") queueTag = tag.Value as string;
            }
            if (busTag == bus && queueTag == queue) depth += value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return depth;
    }

    [Test]
    public async Task The_bus_meter_counts_published_and_delivered_events_and_their_bytes_per_bus_and_topic()
    {
        const int count = 5, payloadBytes = 100;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        using var metrics = new MeasurementRecorder(OnexBusDiagnostics.Name, "bus", publisher.Name);
        var inbox = await SubscribeInboxAsync(subscriber, "metered.>");

        for (var i = 0; i < count; i++)
            await publisher.PublishAsync(OnexEvent.Create("metered.data", new byte[payloadBytes]), TestCancellation);

        await inbox.WaitForCountAsync(count, WaitTimeout, $"{count} metered events");
        await WaitUntilAsync(() => metrics.Sum("onex.bus.delivered", ("topic", "metered.data")) >= count,
            () => $"onex.bus.delivered to reach {count} (it is {metrics.Sum("onex.bus.delivered", ("topic", "metered.data"))})");
        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("onex.bus.published", ("topic", "metered.data")), Is.EqualTo(count), "onex.bus.published");
            Assert.That(metrics.Sum("onex.bus.published.bytes", ("topic", "metered.data")), Is.EqualTo(count * payloadBytes), "onex.bus.published.bytes");
            Assert.That(metrics.Count("onex.bus.publish.duration", ("topic", "metered.data")), Is.EqualTo(count), "one publish duration per event");
            Assert.That(metrics.Sum("onex.bus.delivered", ("topic", "metered.data")), Is.EqualTo(count), "onex.bus.delivered");
            Assert.That(metrics.All.Select(m => m.Tags.GetValueOrDefault("backend")).Distinct(), Has.Exactly(1).Items
                .And.All.Matches<object?>(b => b is string s && s.Length > 0), "every measurement names the backend");
        });
    }

    [Test]
    public async Task The_bus_meter_counts_drops_by_cause()
    {
        const int capacity = 2, sent = 6;
        var (publisher, subscriber) = await CreateParticipantsAsync();
        using var metrics = new MeasurementRecorder(OnexBusDiagnostics.Name, "bus", publisher.Name);
        var full = await SubscribeAsync(subscriber, "meterdrop.data", new SubscriptionOptions { Capacity = capacity, FullMode = BoundedChannelFullMode.DropNewest });
        if (!SupportsDropModes)
        {
            // At-least-once: nothing is dropped for good, so the meter must count no drop at all.
            await AssertNothingLostAsync(publisher, full, sent, "meterdrop.data");
            Assert.That(metrics.Sum("onex.bus.dropped"), Is.EqualTo(subscriber.Health.TotalDropped), "onex.bus.dropped agrees with the health counters");
            return;
        }

        await PublishNumberedAsync(publisher, "meterdrop.data", sent);

        await WaitUntilAsync(() => full.DroppedCount >= sent - capacity, () => $"the full subscription to drop {sent - capacity} (it dropped {full.DroppedCount})");
        if (ExpectedGuarantee == DeliveryGuarantee.AtLeastOnce)
        {
            // Dropped events are redelivered and may be dropped again meanwhile: the meter keeps up, it need not be equal.
            await WaitUntilAsync(() => metrics.Sum("onex.bus.dropped", ("cause", "subscriber_queue")) >= sent - capacity,
                () => "onex.bus.dropped{cause=subscriber_queue} to count the drops");
            return;
        }
        Assert.That(metrics.Sum("onex.bus.dropped", ("cause", "subscriber_queue")), Is.EqualTo(full.DroppedCount),
            "onex.bus.dropped{cause=subscriber_queue} equals the subscription's drop count");
    }
}
