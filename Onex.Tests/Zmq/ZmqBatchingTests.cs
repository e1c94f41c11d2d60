using NetMQ;
using NetMQ.Sockets;
using Onex.Bus;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>
/// The bus's batched framing: a publisher sends events of one topic queued back to back as one message
/// <c>[topic][event][event]...</c>, and <see cref="ZmqEventSubscriber"/> delivers every event of such a message in order.
/// </summary>
public class ZmqBatchingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Test]
    public async Task A_backlog_leaves_as_one_message_per_run_of_one_topic_in_publish_order()
    {
        // Runs short enough to fit one batch each.
        Assert.That(40 * EncodedSize, Is.LessThanOrEqualTo(ZmqEventPublisher.MaxBatchBytes));
        await using var wire = await BacklogWire.StartAsync(publisher =>
        {
            for (var i = 0; i < 40; i++) publisher.Publish(Numbered("orders.a", i));
            publisher.Publish(Numbered("orders.b", 40));
            for (var i = 41; i < 61; i++) publisher.Publish(Numbered("orders.a", i));
        });

        var messages = wire.ReceiveMessages(expectedEvents: 61);

        Assert.Multiple(() =>
        {
            Assert.That(messages.Select(m => (m.Topic, m.Events.Count)), Is.EqualTo(new[] { ("orders.a", 40), ("orders.b", 1), ("orders.a", 20) }),
                "one message per run of one topic");
            Assert.That(messages.SelectMany(m => m.Events).Select(Number), Is.EqualTo(Enumerable.Range(0, 61)), "publish order");
            Assert.That(messages.SelectMany(m => m.Events).Select(e => e.Topic), Is.All.Matches<string>(t => t.StartsWith("orders.", StringComparison.Ordinal)));
        });
    }

    [Test]
    public async Task A_run_of_one_topic_still_leaves_as_one_message_after_more_distinct_topics_than_the_topic_cache_holds()
    {
        const int distinct = 3 * TopicFrameCache.Slots;
        await using var wire = await BacklogWire.StartAsync(publisher =>
        {
            for (var i = 0; i < distinct; i++) publisher.Publish(Numbered($"many.t{i}", i));
            for (var i = distinct; i < distinct + 40; i++) publisher.Publish(Numbered("many.hot", i));
        });

        var messages = wire.ReceiveMessages(expectedEvents: distinct + 40);

        Assert.Multiple(() =>
        {
            Assert.That(messages.Where(m => m.Topic == "many.hot").Select(m => m.Events.Count), Is.EqualTo(new[] { 40 }),
                "the 40-event run after thousands of distinct topics should still be one message");
            Assert.That(messages.SelectMany(m => m.Events).Select(Number), Is.EqualTo(Enumerable.Range(0, distinct + 40)), "publish order");
        });
    }

    [Test]
    public void The_topic_frame_cache_evicts_and_keeps_returning_the_right_frames()
    {
        var cache = new TopicFrameCache();
        var topics = Enumerable.Range(0, 4 * TopicFrameCache.Slots).Select(i => $"cache.t{i}").ToArray();
        foreach (var topic in topics)
            Assert.That(System.Text.Encoding.ASCII.GetString(cache.Get(topic)), Is.EqualTo(topic));

        var hot = cache.Get("cache.hot");
        Assert.Multiple(() =>
        {
            Assert.That(cache.Get("cache.hot"), Is.SameAs(hot), "a topic just used is served from the cache");
            Assert.That(TopicFrameCache.SameTopic(hot, System.Text.Encoding.ASCII.GetBytes("cache.hot")), Is.True, "frames compare by content");
            Assert.That(TopicFrameCache.SameTopic(hot, System.Text.Encoding.ASCII.GetBytes("cache.hoT")), Is.False);
        });
    }

    [Test]
    public async Task Batches_stay_within_the_batch_size_and_a_large_event_travels_alone()
    {
        var large = new byte[40 * 1024];
        BitConverter.TryWriteBytes(large, 300);
        await using var wire = await BacklogWire.StartAsync(publisher =>
        {
            for (var i = 0; i < 300; i++) publisher.Publish(Numbered("orders.a", i));
            publisher.Publish(OnexEvent.Create("orders.a", large));
            for (var i = 301; i < 400; i++) publisher.Publish(Numbered("orders.a", i));
        });

        var messages = wire.ReceiveMessages(expectedEvents: 400);

        Assert.Multiple(() =>
        {
            Assert.That(messages.Where(m => m.Events.Count > 1).Select(m => m.BodyBytes), Is.All.LessThanOrEqualTo(ZmqEventPublisher.MaxBatchBytes), "batch size cap");
            Assert.That(messages.Count(m => m.Events.Count > 1), Is.GreaterThanOrEqualTo(300 * EncodedSize / ZmqEventPublisher.MaxBatchBytes),
                "300 events need several batches");
            Assert.That(messages.Single(m => m.Events.Any(e => e.Payload.Length == large.Length)).Events, Has.Count.EqualTo(1), "the 40 KiB event alone");
            Assert.That(messages.SelectMany(m => m.Events).Select(Number), Is.EqualTo(Enumerable.Range(0, 400)), "publish order");
        });
    }

    [Test]
    public async Task A_full_publish_queue_in_a_drop_mode_discards_the_incoming_events_and_counts_them()
    {
        var health = new EventBusHealth();
        ZmqEventPublisher? publisher = null;
        await using var wire = await BacklogWire.StartAsync(p =>
        {
            publisher = p.WithQueue(new ZmqPublishQueueOptions { Capacity = 3, FullMode = System.Threading.Channels.BoundedChannelFullMode.DropWrite }, health);
            for (var i = 0; i < 5; i++) p.Publish(Numbered("orders.a", i));
        }, startPoller: false);

        Assert.Multiple(() =>
        {
            Assert.That(publisher!.DroppedCount, Is.EqualTo(2), "two events past a queue of three");
            Assert.That(health.DroppedCount(DropCause.PublisherQueue), Is.EqualTo(2), "reported to the participant's health");
            Assert.That(publisher.QueuedBytes, Is.GreaterThan(0));
        });
        await wire.DisposePublisherAsync().AsTask().WaitAsync(Wait);
        var messages = wire.ReceiveMessages(expectedEvents: 3);
        Assert.Multiple(() =>
        {
            Assert.That(messages.SelectMany(m => m.Events).Select(Number), Is.EqualTo(new[] { 0, 1, 2 }), "the queued events went out");
            Assert.That(publisher!.QueuedBytes, Is.Zero, "a flushed queue holds no bytes");
        });
    }

    [Test]
    public async Task Disposing_an_attached_publisher_whose_poller_never_ran_flushes_its_queue()
    {
        await using var wire = await BacklogWire.StartAsync(publisher =>
        {
            for (var i = 0; i < 3; i++) publisher.Publish(Numbered("orders.a", i));
        }, startPoller: false);

        await wire.DisposePublisherAsync().AsTask().WaitAsync(Wait);

        var messages = wire.ReceiveMessages(expectedEvents: 3);
        Assert.That(messages.SelectMany(m => m.Events).Select(Number), Is.EqualTo(new[] { 0, 1, 2 }), "the queue was flushed on dispose");
    }

    [Test]
    public async Task Subscriber_delivers_every_event_of_a_batched_message_and_drops_the_rest_after_a_malformed_one()
    {
        await using var raw = await RawPublisher.StartAsync();
        await using var subscriber = ZmqEventSubscriber.Connect(raw.Endpoint);
        await using var subscription = await subscriber.SubscribeAsync("batch.>");
        await raw.WaitUntilDeliveredAsync(subscription);
        var receivedBefore = subscriber.ReceivedCount;

        raw.Send("batch.t", Encoded("batch.t", 1), Encoded("batch.t", 2), Encoded("batch.t", 3));
        raw.Send("batch.t", Encoded("batch.t", 4), [0xc1], Encoded("batch.t", 5));
        raw.Send("batch.t", Encoded("batch.t", 6), Encoded("batch.other", 7));
        raw.Send("batch.t", Encoded("batch.t", 8));

        var delivered = new List<int>();
        for (var i = 0; i < 6; i++)
            delivered.Add(Number(await ZmqEventBusTests.ReadWithinAsync(subscription, Wait) ?? throw new AssertionException($"event {i + 1} of 6 did not arrive")));

        Assert.Multiple(() =>
        {
            Assert.That(delivered, Is.EqualTo(new[] { 1, 2, 3, 4, 6, 8 }), "the events before each bad one, then the next messages");
            Assert.That(subscriber.MalformedCount, Is.EqualTo(2), "garbage and a topic mismatch inside batches, once each");
            Assert.That(subscriber.ReceivedCount - receivedBefore, Is.EqualTo(6), "events 5 and 7 were never counted as received");
        });
    }

    [Test]
    public async Task A_jump_in_a_publishers_sequence_is_counted_as_events_lost_in_transit()
    {
        var health = new EventBusHealth();
        var notices = new List<BusNotice>();
        health.Notice += (_, notice) => { lock (notices) notices.Add(notice); };
        await using var raw = await RawPublisher.StartAsync();
        await using var subscriber = ZmqEventSubscriber.Connect(raw.Endpoint, new ZmqEventSubscriberOptions { Health = health });
        await using var subscription = await subscriber.SubscribeAsync(">", new SubscriptionOptions { Capacity = 100 });
        await raw.WaitUntilDeliveredAsync(subscription);

        raw.SendNumbered("seq.t", 7, 1, Encoded("seq.t", 1), Encoded("seq.t", 2));   // events 1-2
        raw.SendNumbered("seq.t", 7, 6, Encoded("seq.t", 6));                        // 3-5 never arrived
        raw.SendNumbered("seq.u", 7, 4, Encoded("seq.u", 4));                        // first sight of seq.u: nothing known lost
        raw.SendNumbered("seq.t", 9, 1, Encoded("seq.t", 100));                      // another publisher: its own numbering
        raw.SendNumbered("seq.t", 7, 1, Encoded("seq.t", 1));                        // publisher 7 started over: no loss inferred
        raw.SendNumbered("seq.t", 7, 2, Encoded("seq.t", 2));

        for (var i = 0; i < 7; i++)
            Assert.That(await ZmqEventBusTests.ReadWithinAsync(subscription, Wait), Is.Not.Null, $"event {i + 1} of 7");
        Assert.Multiple(() =>
        {
            Assert.That(subscriber.LostInTransitCount, Is.EqualTo(3), "events 3, 4 and 5 of publisher 7 on seq.t");
            Assert.That(health.DroppedCount(DropCause.Transport), Is.EqualTo(3));
            lock (notices)
                Assert.That(notices.Where(n => n.Kind == BusNoticeKind.Dropped).Select(n => (n.Cause, n.Count)),
                    Is.EqualTo(new[] { ((DropCause?)DropCause.Transport, 3L) }), "one notice for the gap");
            Assert.That(subscriber.MalformedCount, Is.Zero, "a sequence frame is not malformed");
        });
    }

    [Test]
    public async Task A_full_wait_mode_subscription_pauses_inside_a_batch_and_resumes_without_losing_an_event()
    {
        await using var raw = await RawPublisher.StartAsync();
        await using var subscriber = ZmqEventSubscriber.Connect(raw.Endpoint);
        await using var subscription = await subscriber.SubscribeAsync("batch.>", new SubscriptionOptions { Capacity = 1 });
        await raw.WaitUntilDeliveredAsync(subscription);

        raw.Send("batch.t", Enumerable.Range(1, 10).Select(i => Encoded("batch.t", i)).ToArray());
        raw.Send("batch.t", Encoded("batch.t", 11), Encoded("batch.t", 12));

        var delivered = new List<int>();
        for (var i = 0; i < 12; i++)
            delivered.Add(Number(await ZmqEventBusTests.ReadWithinAsync(subscription, Wait) ?? throw new AssertionException($"event {i + 1} of 12 did not arrive")));

        Assert.Multiple(() =>
        {
            Assert.That(delivered, Is.EqualTo(Enumerable.Range(1, 12)), "every event, in order, across pauses");
            Assert.That(subscription.DroppedCount, Is.Zero);
        });
    }

    [Test]
    public async Task A_burst_from_a_joined_participant_arrives_whole_and_in_order()
    {
        await using var host = await ZmqTestBus.HostAsync("batch-burst", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        const int count = 20_000;
        await using var subscription = await host.SubscribeAsync("burst.>", new SubscriptionOptions { Capacity = count });

        for (var i = 0; i < count; i++) await joined.PublishAsync(Numbered(i % 2 == 0 ? "burst.even" : "burst.odd", i));

        var delivered = new List<int>(count);
        for (var i = 0; i < count; i++)
            delivered.Add(Number(await ZmqEventBusTests.ReadWithinAsync(subscription, Wait) ?? throw new AssertionException($"event {i + 1} of {count} did not arrive")));
        Assert.That(delivered, Is.EqualTo(Enumerable.Range(0, count)), "one participant's events in publish order");
    }

    [Test]
    public async Task Participants_with_smaller_codec_limits_receive_the_batches_of_those_with_larger_ones()
    {
        // Frames above 9 KiB (8 KiB + slack) would exceed this side's own frame limit; batches are bigger than that.
        var small = ZmqSocketOptions.Default with { CodecLimits = new EventCodecLimits { MaxPayloadBytes = 4 * 1024, MaxFrameBytes = 8 * 1024 } };
        await using var host = await ZmqEventBus.HostAsync((await ZmqTestBus.TcpOptionsAsync("mixed-limits")) with { Socket = small });
        await using var atHost = await host.SubscribeAsync("mixed.>", new SubscriptionOptions { Capacity = 1_000 });
        using var peer = new PublisherSocket();
        peer.Connect(host.PublishEndpoint);
        // A raw PUB drops until the forwarder's subscribe-all reaches it: send probes until one arrives.
        var probe = Encoded("mixed.probe", -1);
        OnexEvent? first = null;
        for (var attempt = 0; attempt < 200 && first is null; attempt++)
        {
            peer.SendMoreFrame("mixed.probe").SendFrame(probe);
            first = await ZmqEventBusTests.ReadWithinAsync(atHost, TimeSpan.FromMilliseconds(50));
        }
        Assert.That(first, Is.Not.Null, "the peer's probes never reached the host");
        // Later probes may still be in flight: drain them behind a marker.
        peer.SendMoreFrame("mixed.probe").SendFrame(Encoded("mixed.probe", -2));
        while (await ZmqEventBusTests.ReadWithinAsync(atHost, Wait) is { } straggler && Number(straggler) != -2) { }

        // What a participant with default limits sends in a burst: one message of as many events as fit a batch.
        var perBatch = ZmqEventPublisher.MaxBatchBytes / EncodedSize;
        var batch = Enumerable.Range(0, perBatch).SelectMany(i => Encoded("mixed.burst", i)).ToArray();
        Assert.That(batch.Length, Is.GreaterThan(small.CodecLimits.MaxFrameBytes + 1024), "the batch must exceed the small side's frame limit");
        peer.SendMoreFrame("mixed.burst").SendFrame(batch);

        var delivered = new List<int>(perBatch);
        for (var i = 0; i < perBatch; i++)
            delivered.Add(Number(await ZmqEventBusTests.ReadWithinAsync(atHost, Wait) ?? throw new AssertionException($"the host got {i} of {perBatch} events")));
        Assert.That(delivered, Is.EqualTo(Enumerable.Range(0, perBatch)), "every event of the batch, in order");
    }

    // The encoded size of a Numbered event.
    private static readonly int EncodedSize = Encoded("orders.a", 0).Length;

    private static OnexEvent Numbered(string topic, int number) => OnexEvent.Create(topic, BitConverter.GetBytes(number).Concat(new byte[160]).ToArray());

    private static byte[] Encoded(string topic, int number) => OnexEventCodec.Default.Encode(Numbered(topic, number));

    private static int Number(OnexEvent evt) => BitConverter.ToInt32(evt.Payload.Span);

    private sealed record WireMessage(string Topic, int BodyBytes, List<OnexEvent> Events);

    /// <summary>
    /// A batching publisher attached to a poller that starts only after the whole backlog is queued, so the first
    /// drain sees all of it; its messages go over an inproc PUSH/PULL pair (no subscription race).
    /// </summary>
    private sealed class BacklogWire : IAsyncDisposable
    {
        private readonly PushSocket _push = new();
        private readonly PullSocket _pull = new();
        private readonly NetMQPoller _poller = new();
        private ZmqEventPublisher? _publisher;

        public static Task<BacklogWire> StartAsync(Action<ZmqEventPublisher> queueBacklog, bool startPoller = true)
        {
            var wire = new BacklogWire();
            var endpoint = $"inproc://batching-{Guid.NewGuid():N}";
            wire._push.Options.SendHighWatermark = 0;
            wire._push.Bind(endpoint);
            wire._pull.Connect(endpoint);
            wire._publisher = ZmqEventPublisher.Attach(wire._push, wire._poller, endpoint, ZmqSocketOptions.Default, null);
            queueBacklog(wire._publisher);
            if (startPoller) wire._poller.RunAsync();
            return Task.FromResult(wire);
        }

        public async ValueTask DisposePublisherAsync()
        {
            if (_publisher is not null) await _publisher.DisposeAsync();
            _publisher = null;
        }

        public List<WireMessage> ReceiveMessages(int expectedEvents)
        {
            var messages = new List<WireMessage>();
            var events = 0;
            while (events < expectedEvents)
            {
                var frames = new List<byte[]>();
                Assert.That(_pull.TryReceiveMultipartBytes(Wait, ref frames), Is.True, $"only {events} of {expectedEvents} events arrived");
                Assert.That(frames, Has.Count.EqualTo(3), "[topic][events][sequence]");
                Assert.That(frames[2], Has.Length.EqualTo(20), "publisher id, first sequence, event count");
                var decoded = new List<OnexEvent>();
                for (var offset = 0; offset < frames[1].Length;)
                {
                    decoded.Add(OnexEventCodec.Default.DecodeNext(frames[1].AsMemory(offset), out var consumed));
                    offset += consumed;
                }
                messages.Add(new WireMessage(System.Text.Encoding.ASCII.GetString(frames[0]), frames[1].Length, decoded));
                events += decoded.Count;
            }
            return messages;
        }

        public async ValueTask DisposeAsync()
        {
            await DisposePublisherAsync();
            _poller.Dispose();
            _push.Dispose();
            _pull.Dispose();
        }
    }

    /// <summary>A raw PUB socket on a leased port that sends hand-made bus messages.</summary>
    private sealed class RawPublisher : IAsyncDisposable
    {
        private readonly PublisherSocket _socket = new();

        public string Endpoint { get; private set; } = "";

        public static async Task<RawPublisher> StartAsync()
        {
            var raw = new RawPublisher();
            raw.Endpoint = $"tcp://127.0.0.1:{(await TestPorts.LeaseAsync())[0]}";
            raw._socket.Bind(raw.Endpoint);
            return raw;
        }

        /// <summary>Sends <c>[topic][events concatenated]</c>.</summary>
        public RawPublisher Send(string topic, params byte[][] events)
        {
            _socket.SendMoreFrame(topic).SendFrame(events.SelectMany(e => e).ToArray());
            return this;
        }

        /// <summary>Sends <c>[topic][events concatenated][sequence]</c>, as a bus participant does.</summary>
        public RawPublisher SendNumbered(string topic, long publisher, long firstSequence, params byte[][] events)
        {
            _socket.SendMoreFrame(topic).SendMoreFrame(events.SelectMany(e => e).ToArray())
                .SendFrame(ZmqControl.SequenceFrame(publisher, firstSequence, events.Length));
            return this;
        }

        /// <summary>A bare PUB drops until the SUB's filter reaches it: sends probes until one is delivered.</summary>
        public async Task WaitUntilDeliveredAsync(IEventSubscription subscription)
        {
            for (var attempt = 0; attempt < 200; attempt++)
            {
                Send("batch.probe", Encoded("batch.probe", -1));
                if (await ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(50)) is not null)
                {
                    // Later probes may still be in flight: drain them behind a marker.
                    Send("batch.probe", Encoded("batch.probe", -2));
                    while ((await ZmqEventBusTests.ReadWithinAsync(subscription, Wait)) is { } evt && Number(evt) != -2) { }
                    return;
                }
            }
            Assert.Fail("the raw publisher's probes never reached the subscriber");
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return default;
        }
    }
}
