using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Text;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Transports.Ipc;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Ipc;

/// <summary>
/// The host's broker facing hand-driven peers: bad frames cost the sender its connection and nothing else, and a
/// peer that stops reading loses events (counted, reported) without holding anyone else back.
/// </summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcBrokerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private IpcTestRoot _root = null!;
    private CapturingLoggerFactory _logs = null!;

    [SetUp]
    public void CreateRoot()
    {
        _root = new IpcTestRoot();
        _logs = new CapturingLoggerFactory();
    }

    [TearDown]
    public void RemoveRoot()
    {
        _root.Dispose();
        _logs.Dispose();
    }

    private IpcEventBusOptions HostOptions => IpcEventBusOptions.Default with
    {
        Name = "bus",
        RootDirectory = _root.Path,
        LoggerFactory = _logs,
        MaxFrameBytes = 64 * 1024,
    };

    public static IEnumerable<TestCaseData> BadFrames()
    {
        yield return Case("zero length", false, [0, 0, 0, 0], ErrorCodes.Malformed);
        yield return Case("HTTP request instead of frames", false, Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: bus\r\n\r\n"), ErrorCodes.TooLarge);
        yield return Case("PUBLISH before HELLO", false, RawIpcPeer.Frame(RawIpcPeer.Publish, [0x80]), ErrorCodes.Malformed);
        yield return Case("HELLO too short", false, RawIpcPeer.Frame(RawIpcPeer.Hello, [0, 1]), ErrorCodes.Malformed);
        yield return Case("HELLO with protocol version 9", false, RawIpcPeer.HelloFrame(version: 9), ErrorCodes.UnsupportedVersion);
        yield return Case("HELLO with protocol version 1 (unnumbered events)", false, RawIpcPeer.HelloFrame(version: 1), ErrorCodes.UnsupportedVersion);
        yield return Case("unknown frame type", true, RawIpcPeer.Frame(0x55, [1, 2, 3]), ErrorCodes.UnknownMessageType);
        yield return Case("PUBLISH body that is not MessagePack", true, RawIpcPeer.Frame(RawIpcPeer.Publish, RawIpcPeer.EventBody(1, 1, [0xC1, 0xC1])), ErrorCodes.Malformed);
        yield return Case("PUBLISH body shorter than its numbers", true, RawIpcPeer.Frame(RawIpcPeer.Publish, new byte[15]), ErrorCodes.Malformed);
        yield return Case("version 1's unnumbered PUBLISH", true,
            RawIpcPeer.Frame(RawIpcPeer.PublishV1, OnexEventCodec.Default.Encode(OnexEvent.Create("v1.event", ReadOnlyMemory<byte>.Empty))), ErrorCodes.UnsupportedVersion);
        yield return Case("PUBLISH of an event with a wildcard topic", true,
            RawIpcPeer.EventFrame(RawIpcPeer.Publish, OnexEvent.Create("ok", ReadOnlyMemory<byte>.Empty) with { Topic = "a.*" }),
            ErrorCodes.Malformed);
        yield return Case("SUBSCRIBE with an invalid pattern", true, RawIpcPeer.SubscribeFrame(1, "a..b", lossless: false), ErrorCodes.Malformed);
        yield return Case("UNSUBSCRIBE with a 2-byte id", true, RawIpcPeer.Frame(RawIpcPeer.Unsubscribe, [0, 1]), ErrorCodes.Malformed);

        static TestCaseData Case(string name, bool afterHandshake, byte[] bytes, string code) =>
            new TestCaseData(afterHandshake, bytes, code).SetArgDisplayNames(name);
    }

    [TestCaseSource(nameof(BadFrames))]
    public async Task Bad_frame_gets_an_error_frame_and_the_peer_is_disconnected(bool afterHandshake, byte[] bytes, string expectedCode)
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath);
        if (afterHandshake) await peer.HandshakeAsync();

        await peer.SendAsync(bytes);

        Assert.That(await peer.ReadErrorThenEndAsync(), Is.EqualTo(expectedCode), "error code in the ERROR frame");
    }

    [TestCaseSource(nameof(BadFrames))]
    public async Task Bad_frame_from_one_peer_leaves_the_broker_serving_others(bool afterHandshake, byte[] bytes, string expectedCode)
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });
        await using var subscription = await participant.SubscribeAsync("after.bad");
        await using (var peer = await RawIpcPeer.ConnectAsync(host.SocketPath))
        {
            if (afterHandshake) await peer.HandshakeAsync();
            await peer.SendAsync(bytes);
            await peer.ReadErrorThenEndAsync();
        }

        await host.PublishAsync(OnexEvent.Create("after.bad", "still here"u8.ToArray()));

        var received = await subscription.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(received.Topic, Is.EqualTo("after.bad"), $"the existing participant after a peer sent: {expectedCode}");
        await using var newcomer = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });
        Assert.That(newcomer.IsConnected, Is.True, "a new participant can still join");
    }

    [Test]
    public async Task Bad_frame_is_logged_as_an_error_naming_the_code()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using (var peer = await RawIpcPeer.ConnectAsync(host.SocketPath))
        {
            await peer.HandshakeAsync("garbage-sender");
            await peer.SendAsync(RawIpcPeer.Frame(RawIpcPeer.Publish, [0xC1]));
            await peer.ReadErrorThenEndAsync();
        }

        var entry = _logs.Entries.SingleOrDefault(e => e.EventId.Id == 4113);
        Assert.That(entry, Is.Not.Null, "a protocol-violation entry (event 4113)");
        Assert.Multiple(() =>
        {
            Assert.That(entry!.Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Error));
            Assert.That(entry.Message, Does.Contain("garbage-sender").And.Contain(ErrorCodes.Malformed));
        });
    }

    [Test]
    public async Task Peer_that_subscribes_without_reading_acknowledgements_is_disconnected()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { OutboundQueueCapacity = 16 });
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath, receiveBufferBytes: 4096);
        await peer.HandshakeAsync("ack-hoarder");
        var burst = Enumerable.Repeat(RawIpcPeer.SubscribeFrame(1, "same.id", lossless: false), 1000).SelectMany(f => f).ToArray();

        // Far more acknowledgements than the socket buffers plus the broker's backlog allowance can hold.
        for (var i = 0; i < 200; i++)
        {
            try
            {
                await peer.SendAsync(burst).WaitAsync(Timeout);
            }
            catch (System.Net.Sockets.SocketException)
            {
                break; // The host already closed the connection.
            }
        }

        // The peer is not reading, so the ERROR frame may not fit in before the close; the log says why.
        while (await peer.ReadFrameAsync() is not null)
        {
        }
        Assert.That(_logs.Entries.Where(e => e.EventId.Id == 4113).Select(e => e.Message),
            Has.Some.Contain("ack-hoarder").And.Contain(ErrorCodes.InvalidArgument), "the protocol-violation entry for the hoarding peer");
    }

    [Test]
    public async Task Peer_exceeding_the_subscription_limit_is_disconnected()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath);
        await peer.HandshakeAsync("subscription-hoarder");
        var reading = Task.Run(peer.ReadErrorThenEndAsync);

        var frames = Enumerable.Range(0, 4097).SelectMany(i => RawIpcPeer.SubscribeFrame((uint)i, "many.subs", lossless: false)).ToArray();
        await peer.SendAsync(frames).WaitAsync(Timeout);

        Assert.That(await reading.WaitAsync(Timeout), Is.EqualTo(ErrorCodes.InvalidArgument));
    }

    [Test]
    public async Task Oversized_frame_header_is_refused_before_its_body_is_read()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath);
        await peer.HandshakeAsync();
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)HostOptions.MaxFrameBytes + 1);
        header[4] = RawIpcPeer.Publish;

        // Only the header is sent: the broker must not wait for 64 KiB that never come.
        await peer.SendAsync(header);

        Assert.That(await peer.ReadErrorThenEndAsync(), Is.EqualTo(ErrorCodes.TooLarge));
    }

    [Test]
    public async Task Frame_of_exactly_the_limit_is_accepted()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var subscription = await host.SubscribeAsync("limit.exact");
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath);
        await peer.HandshakeAsync();
        var body = EventBodyOfFrameLength("limit.exact", HostOptions.MaxFrameBytes);

        await peer.SendAsync(RawIpcPeer.Frame(RawIpcPeer.Publish, body));

        var received = await subscription.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(received.Topic, Is.EqualTo("limit.exact"));
    }

    [Test]
    public async Task Silent_peer_is_dropped_after_the_handshake_timeout()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { HandshakeTimeout = TimeSpan.FromMilliseconds(200) });
        await using var peer = await RawIpcPeer.ConnectAsync(host.SocketPath);

        Assert.That(await peer.ReadFrameAsync(), Is.Null, "the host should close a connection that never says HELLO");
    }

    [Test]
    public async Task Peer_that_stops_reading_does_not_hold_back_publishers_or_other_subscribers()
    {
        const int count = 300;
        await using var host = await IpcEventBus.HostAsync(HostOptions with { OutboundQueueCapacity = 8 });
        await using var stuck = await StuckSubscriberAsync(host, "load.>");
        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });
        await using var healthy = await participant.SubscribeAsync("load.>", new SubscriptionOptions { Capacity = count, FullMode = BoundedChannelFullMode.Wait });
        var payload = new byte[16 * 1024];

        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++) await host.PublishAsync(OnexEvent.Create("load.data", payload));
        });
        await publishing.WaitAsync(Timeout);

        var received = 0;
        while (received < count)
        {
            await healthy.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
            received++;
        }
        Assert.That(received, Is.EqualTo(count), "the healthy participant should get every event");
    }

    [Test]
    public async Task Events_dropped_for_a_stuck_peer_are_reported_to_it_exactly()
    {
        const int count = 300;
        await using var host = await IpcEventBus.HostAsync(HostOptions with { OutboundQueueCapacity = 8 });
        await using var stuck = await StuckSubscriberAsync(host, "load.>");
        var payload = new byte[16 * 1024];
        for (var i = 0; i < count; i++) await host.PublishAsync(OnexEvent.Create("load.data", payload)).AsTask().WaitAsync(Timeout);

        // Now read: every event is either delivered or counted in a DROPPED frame for subscription 1.
        long events = 0, dropped = 0;
        while (events + dropped < count)
        {
            var frame = await stuck.ReadFrameAsync() ?? throw new AssertionException($"Connection closed after {events} events and {dropped} drops.");
            if (frame.Type == RawIpcPeer.Event) events++;
            else if (frame.Type == RawIpcPeer.Dropped)
            {
                Assert.That(BinaryPrimitives.ReadUInt32BigEndian(frame.Body), Is.EqualTo(1u), "DROPPED names the subscription");
                dropped += BinaryPrimitives.ReadInt64BigEndian(frame.Body.AsSpan(4));
            }
        }
        Assert.Multiple(() =>
        {
            Assert.That(events + dropped, Is.EqualTo(count), "events delivered plus events reported dropped");
            Assert.That(dropped, Is.GreaterThan(0), "with an 8-frame queue and a peer not reading, some events must be dropped");
            Assert.That(_logs.Entries.Select(e => e.EventId.Id), Does.Contain(4116), "the overflow warning (event 4116)");
        });
    }

    [Test]
    public async Task Drops_are_reported_where_they_happened_so_the_numbers_jump_by_exactly_the_count_reported()
    {
        const int count = 300;
        await using var host = await IpcEventBus.HostAsync(HostOptions with { OutboundQueueCapacity = 8 });
        await using var stuck = await StuckSubscriberAsync(host, "load.>");
        var payload = new byte[16 * 1024];
        for (var i = 0; i < count; i++) await host.PublishAsync(OnexEvent.Create("load.data", payload)).AsTask().WaitAsync(Timeout);

        ulong expected = 1;
        long reportedSinceLastEvent = 0, events = 0, dropped = 0;
        while (events + dropped < count)
        {
            var frame = await stuck.ReadFrameAsync() ?? throw new AssertionException($"Connection closed after {events} events and {dropped} drops.");
            if (frame.Type == RawIpcPeer.Dropped)
            {
                var reported = BinaryPrimitives.ReadInt64BigEndian(frame.Body.AsSpan(4));
                reportedSinceLastEvent += reported;
                dropped += reported;
                continue;
            }
            Assert.That(frame.Type, Is.EqualTo(RawIpcPeer.Event), "only EVENT and DROPPED frames");
            var sequence = BinaryPrimitives.ReadUInt64BigEndian(frame.Body.AsSpan(8));
            Assert.That((long)(sequence - expected), Is.EqualTo(reportedSinceLastEvent),
                $"event {sequence} after {expected - 1}: the jump equals the drops reported in between");
            expected = sequence + 1;
            reportedSinceLastEvent = 0;
            events++;
        }
        Assert.That(dropped, Is.GreaterThan(0), "with an 8-frame queue and a peer not reading, some events must be dropped");
    }

    [Test]
    public async Task Stuck_participant_sees_broker_drops_in_its_DroppedCount()
    {
        // A real participant that is not scheduled to read cannot be forced; a fake host sends the DROPPED frame.
        using var fakeHost = new RawIpcHost(_root, "fake");
        var joining = IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = fakeHost.SocketPath }).AsTask();
        await using var hostSide = await fakeHost.AcceptAsync();
        Assert.That((await hostSide.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Hello));
        await hostSide.SendAsync(RawIpcPeer.WelcomeFrame("fake"));
        await using var participant = await joining.WaitAsync(Timeout);
        var subscribing = participant.SubscribeAsync("x.>", new SubscriptionOptions { FullMode = BoundedChannelFullMode.DropOldest }).AsTask();
        var subscribe = (await hostSide.ReadFrameAsync())!;
        var id = BinaryPrimitives.ReadUInt32BigEndian(subscribe.Body);
        await hostSide.SendAsync(RawIpcPeer.IdFrame(RawIpcPeer.Subscribed, id));
        await using var subscription = await subscribing.WaitAsync(Timeout);

        await hostSide.SendAsync(RawIpcPeer.DroppedFrame(id, 5));
        await hostSide.SendAsync(RawIpcPeer.EventFrame(RawIpcPeer.Event, OnexEvent.Create("x.after", ReadOnlyMemory<byte>.Empty)));
        await subscription.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

        Assert.That(subscription.DroppedCount, Is.EqualTo(5), "drops reported by the host count against the subscription");
    }

    [Test]
    public async Task Event_too_large_for_a_peer_is_dropped_for_that_peer_only()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var small = await RawIpcPeer.ConnectAsync(host.SocketPath);
        await small.SendAsync(RawIpcPeer.HelloFrame("small", maxFrameBytes: 2048));
        Assert.That((await small.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Welcome));
        await small.SendAsync(RawIpcPeer.SubscribeFrame(7, "big.>", lossless: true));
        Assert.That((await small.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Subscribed));
        await using var local = await host.SubscribeAsync("big.>");

        await host.PublishAsync(OnexEvent.Create("big.blob", new byte[4096]));
        await host.PublishAsync(OnexEvent.Create("big.small", new byte[16]));

        Assert.That((await local.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Topic, Is.EqualTo("big.blob"), "the host's own subscriber gets the big event");
        var first = (await small.ReadFrameAsync())!;
        Assert.That(first.Type, Is.EqualTo(RawIpcPeer.Dropped), "the small peer is told the big event was dropped for it");
        var second = (await small.ReadFrameAsync())!;
        Assert.That(RawIpcPeer.DecodeEvent(second.Body).Topic, Is.EqualTo("big.small"), "the next event still arrives");
    }

    // A raw peer subscribed in a drop mode that never reads again; its receive buffer is small so it fills quickly.
    private static async Task<RawIpcPeer> StuckSubscriberAsync(IpcEventBus host, string pattern)
    {
        var peer = await RawIpcPeer.ConnectAsync(host.SocketPath, receiveBufferBytes: 4096);
        await peer.HandshakeAsync("stuck");
        await peer.SendAsync(RawIpcPeer.SubscribeFrame(1, pattern, lossless: false));
        Assert.That((await peer.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Subscribed), "SUBSCRIBED for the stuck peer");
        return peer;
    }

    // An encoded event padded (via its payload) so that type byte + body is exactly frameLength bytes.
    private static byte[] EventBodyOfFrameLength(string topic, int frameLength)
    {
        var template = OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty);
        for (var payload = frameLength - 200; payload < frameLength; payload++)
        {
            var body = RawIpcPeer.EventBody(1, 1, OnexEventCodec.Default.Encode(template with { Payload = new byte[payload] }));
            if (1 + body.Length == frameLength) return body;
        }
        throw new InvalidOperationException($"No payload size gives a frame of exactly {frameLength} bytes.");
    }
}
