using System.Diagnostics;
using System.Threading.Channels;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Onex.Bus;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>
/// Subscriptions on <see cref="JetStreamEventBus"/>: where they start, acknowledgement (an event is acknowledged when
/// the reader asks for the next one or disposes the subscription after reading it), redelivery, durable resume,
/// flow control and what drop modes mean for at-least-once.
/// </summary>
[TestFixture]
public sealed class JetStreamSubscriptionTests : JetStreamServerTests
{
    [Test]
    public async Task Non_durable_subscription_starts_with_events_published_after_it()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        await bus.PublishAsync(Numbered("start.here", 1));

        await using var subscription = await bus.SubscribeAsync("start.>");
        await bus.PublishAsync(Numbered("start.here", 2));

        var first = await ReadWithinAsync(subscription.Reader, "the event published after subscribing");
        Assert.That(NumberOf(first), Is.EqualTo(2), "an event published before SubscribeAsync was delivered");
    }

    [Test]
    public async Task Durable_subscription_resumes_with_the_events_published_while_it_was_away()
    {
        var options = Options(Server, UniqueBusName());
        var durable = new SubscriptionOptions { DurableName = "billing" };
        await using var publisher = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false });
        await using (var firstRun = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false }))
        {
            await using var subscription = await firstRun.SubscribeAsync("invoice.>", durable);
            await publisher.PublishAsync(Numbered("invoice.paid", 1));
            Assert.That(NumberOf(await ReadWithinAsync(subscription.Reader, "event 1 in the first run")), Is.EqualTo(1));
        }

        await publisher.PublishAsync(Numbered("invoice.paid", 2));
        await publisher.PublishAsync(Numbered("invoice.paid", 3));
        await using var secondRun = await JetStreamEventBus.ConnectAsync(options);
        await using var resumed = await secondRun.SubscribeAsync("invoice.>", durable);

        var numbers = new[]
        {
            NumberOf(await ReadWithinAsync(resumed.Reader, "the first event published while away")),
            NumberOf(await ReadWithinAsync(resumed.Reader, "the second event published while away")),
        };
        Assert.That(numbers, Is.EqualTo(new[] { 2, 3 }), "the resumed subscription should start after the acknowledged event 1");
    }

    [Test]
    public async Task Event_read_but_not_acknowledged_when_the_bus_goes_away_is_redelivered_to_the_durable_consumer()
    {
        // Reading event 1 and disposing the bus without asking for the next event or disposing the subscription:
        // the reader may not have finished it, so it is not acknowledged.
        var options = Options(Server, UniqueBusName());
        var durable = new SubscriptionOptions { DurableName = "worker" };
        OnexEvent firstDelivery;
        await using (var crashed = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false }))
        {
            var subscription = await crashed.SubscribeAsync("jobs.>", durable);
            await crashed.PublishAsync(Numbered("jobs.resize", 1));
            firstDelivery = await ReadWithinAsync(subscription.Reader, "the job before the bus goes away");
        }

        await using var restarted = await JetStreamEventBus.ConnectAsync(options);
        await using var again = await restarted.SubscribeAsync("jobs.>", durable);

        var redelivered = await ReadWithinAsync(again.Reader, "the unacknowledged job again");
        Assert.That(redelivered.EventId, Is.EqualTo(firstDelivery.EventId), "the unacknowledged event should be delivered again");
    }

    [Test]
    public async Task Event_held_longer_than_AckWait_is_delivered_again()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()) with { AckWait = TimeSpan.FromSeconds(1) });
        await using var subscription = await bus.SubscribeAsync("slow.>");
        await bus.PublishAsync(Numbered("slow.work", 1));
        var held = await ReadWithinAsync(subscription.Reader, "the event");

        // Not asking for the next event keeps it unacknowledged; peeking does not ask.
        await WaitUntilAsync(() => subscription.Reader.TryPeek(out _), "the redelivery to be queued");

        Assert.That(subscription.Reader.TryRead(out var again), Is.True);
        Assert.That(again!.EventId, Is.EqualTo(held.EventId), "the queued event should be the redelivery of the held one");
    }

    [Test]
    public async Task Asking_for_the_next_event_acknowledges_the_previous_one()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        var subscription = await bus.SubscribeAsync("ack.>", new SubscriptionOptions { DurableName = "acker" });
        await bus.PublishAsync(Numbered("ack.one", 1));
        await bus.PublishAsync(Numbered("ack.two", 2));
        await ReadWithinAsync(subscription.Reader, "event 1");
        await WaitForAckPendingAsync(bus.StreamName, "acker", 2, "both events handed out or queued, none acknowledged");

        await ReadWithinAsync(subscription.Reader, "event 2");

        await WaitForAckPendingAsync(bus.StreamName, "acker", 1, "event 1 acknowledged once event 2 was asked for");
        await subscription.DisposeAsync();
        var consumer = await Js.GetConsumerAsync(bus.StreamName, "acker");
        Assert.That(consumer.Info.NumAckPending, Is.Zero, "disposing after reading event 2 should acknowledge it");
    }

    [Test]
    public async Task Wait_mode_pulls_no_more_events_than_the_queue_holds()
    {
        const int capacity = 4, published = 40;
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        await using var subscription = await bus.SubscribeAsync(
            "flow.>", new SubscriptionOptions { DurableName = "flow", Capacity = capacity, FullMode = BoundedChannelFullMode.Wait });

        for (var i = 1; i <= published; i++)
            await bus.PublishAsync(Numbered("flow.item", i));
        await WaitUntilAsync(() => subscription.Reader.Count == capacity, "the queue to fill");

        var consumer = await Js.GetConsumerAsync(bus.StreamName, "flow");
        Assert.Multiple(() =>
        {
            // The queue's events plus the one the pump holds while it waits for room.
            Assert.That(consumer.Info.NumAckPending, Is.LessThanOrEqualTo(capacity + 1), "events pulled beyond the queue's room");
            Assert.That(consumer.Info.NumPending, Is.GreaterThanOrEqualTo((ulong)(published - capacity - 1)), "events left on the server");
        });
    }

    [Test]
    public async Task Dropped_events_are_delivered_again_after_AckWait()
    {
        const int capacity = 2, published = 6;
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()) with { AckWait = TimeSpan.FromSeconds(1) });
        await using var subscription = await bus.SubscribeAsync(
            "drop.>", new SubscriptionOptions { Capacity = capacity, FullMode = BoundedChannelFullMode.DropWrite });

        for (var i = 1; i <= published; i++)
            await bus.PublishAsync(Numbered("drop.item", i));
        await WaitUntilAsync(() => subscription.DroppedCount >= published - capacity, "the queue to drop the overflow");

        var seen = new HashSet<int>();
        var elapsed = Stopwatch.StartNew();
        while (seen.Count < published && elapsed.Elapsed < WaitLimit)
            seen.Add(NumberOf(await ReadWithinAsync(subscription.Reader, $"all {published} events (have {seen.Count})")));
        Assert.That(seen, Is.EquivalentTo(Enumerable.Range(1, published)), "a dropped event was lost for good");
    }

    [Test]
    public async Task Subscriptions_sharing_a_durable_name_share_the_events()
    {
        const int published = 20;
        var options = Options(Server, UniqueBusName());
        await using var first = await JetStreamEventBus.ConnectAsync(options);
        await using var second = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false });
        var shared = new SubscriptionOptions { DurableName = "pool" };
        await using var a = await first.SubscribeAsync("work.>", shared);
        await using var b = await second.SubscribeAsync("work.>", shared);

        for (var i = 1; i <= published; i++)
            await first.PublishAsync(Numbered("work.item", i));

        var seen = new HashSet<int>();
        var elapsed = Stopwatch.StartNew();
        while (seen.Count < published && elapsed.Elapsed < WaitLimit)
        {
            var any = false;
            foreach (var reader in new[] { a.Reader, b.Reader })
            {
                while (reader.TryRead(out var evt))
                {
                    seen.Add(NumberOf(evt));
                    any = true;
                }
            }
            if (any) continue;
            // Nothing queued: wait until either member has an event (or the time is up), no fixed sleep.
            var remaining = WaitLimit - elapsed.Elapsed;
            if (remaining <= TimeSpan.Zero) break;
            var readable = Task.WhenAny(a.Reader.WaitToReadAsync().AsTask(), b.Reader.WaitToReadAsync().AsTask());
            await Task.WhenAny(readable, Task.Delay(remaining));
        }
        Assert.That(seen, Is.EquivalentTo(Enumerable.Range(1, published)), "the two members together should see every event");
    }

    [Test]
    public async Task Message_that_is_not_an_event_is_skipped_and_the_next_event_arrives()
    {
        var busName = UniqueBusName();
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, busName));
        await using var subscription = await bus.SubscribeAsync("junk.>");

        var garbage = await Js.PublishAsync($"onex.{busName}.junk.raw", new byte[] { 0xC1, 0x00, 0xFF }, NatsRawSerializer<byte[]>.Default);
        garbage.EnsureSuccess();
        await bus.PublishAsync(Numbered("junk.valid", 1));

        var received = await ReadWithinAsync(subscription.Reader, "the valid event after the garbage");
        Assert.That(received.Topic, Is.EqualTo("junk.valid"));
    }

    [Test]
    public async Task Disposing_a_non_durable_subscription_removes_its_consumer()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        var subscription = await bus.SubscribeAsync("temp.>");

        await subscription.DisposeAsync();

        var names = new List<string>();
        await foreach (var name in Js.ListConsumerNamesAsync(bus.StreamName))
            names.Add(name);
        Assert.That(names, Is.Empty, "the ephemeral consumer should be deleted with its subscription");
    }

    [Test]
    public async Task Durable_consumer_outlives_its_subscription()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        var subscription = await bus.SubscribeAsync("keep.>", new SubscriptionOptions { DurableName = "keeper" });

        await subscription.DisposeAsync();

        var consumer = await Js.GetConsumerAsync(bus.StreamName, "keeper");
        Assert.That(consumer.Info.Config.DurableName, Is.EqualTo("keeper"));
    }

    // How often state that cannot be awaited (the server's consumer counters, a drop counter) is polled.
    private static readonly TimeSpan ServerPollInterval = TimeSpan.FromMilliseconds(10);

    private async Task WaitForAckPendingAsync(string stream, string consumer, int expected, string what)
    {
        var last = -1;
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed < WaitLimit)
        {
            last = (await Js.GetConsumerAsync(stream, consumer)).Info.NumAckPending;
            if (last == expected) return;
            await Task.Delay(ServerPollInterval);
        }
        Assert.Fail($"Expected {expected} unacknowledged events ({what}), the consumer reports {last}.");
    }

    /// <summary>Polls state that has nothing to await (a queue count, a drop counter) until it holds, or fails.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var elapsed = Stopwatch.StartNew();
        while (!condition())
        {
            if (elapsed.Elapsed > WaitLimit) Assert.Fail($"Timed out after {WaitLimit.TotalSeconds:0}s waiting for {what}.");
            await Task.Delay(ServerPollInterval);
        }
    }
}
