using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Events;
using Onex.Transports.Ipc;

namespace Onex.Tests.Ipc;

/// <summary>
/// The publisher id and per-topic sequence numbers in Unix-socket event frames (protocol version 2): a joined
/// participant counts a jump as events lost in transit (<see cref="DropCause.Transport"/>, with a notice), never twice
/// what the host already reported, and never a publisher that started over. Driven frame by frame by a fake host.
/// </summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcSequenceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private IpcTestRoot _root = null!;

    [SetUp]
    public void CreateRoot() => _root = new IpcTestRoot();

    [TearDown]
    public void RemoveRoot() => _root.Dispose();

    [Test]
    public async Task A_jump_in_a_publishers_numbers_is_counted_as_lost_in_transit_with_a_notice()
    {
        await using var joined = await JoinFakeHostAsync();
        var notices = Notices(joined.Participant);

        await joined.SendEventsAsync(7, "gap.a", 1, 2, 5);

        await joined.ReadAsync(3);
        Assert.That(joined.Participant.Health.DroppedCount(DropCause.Transport), Is.EqualTo(2), "events 3 and 4 never arrived");
        var notice = await notices.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Multiple(() =>
        {
            Assert.That((notice.Kind, notice.Cause, notice.Count, notice.Total), Is.EqualTo((BusNoticeKind.Dropped, (DropCause?)DropCause.Transport, 2L, 2L)));
            Assert.That(notice.Detail, Does.Contain("gap.a").And.Contain("0000000000000007"), "the notice names the topic and the publisher");
        });
    }

    [Test]
    public async Task A_publisher_starting_over_or_first_heard_of_is_no_loss()
    {
        await using var joined = await JoinFakeHostAsync();

        await joined.SendEventsAsync(7, "gap.a", 10, 3, 4);
        await joined.SendEventsAsync(8, "gap.a", 50, 51);
        await joined.SendEventsAsync(7, "gap.b", 20);

        await joined.ReadAsync(6);
        Assert.That(joined.Participant.Health.DroppedCount(DropCause.Transport), Is.Zero,
            "a first number (even 50) and a number going back (10 then 3) infer no loss");
    }

    [Test]
    public async Task Drops_the_host_reported_are_not_counted_again_as_a_jump()
    {
        await using var joined = await JoinFakeHostAsync();

        await joined.SendEventsAsync(7, "gap.a", 1);
        await joined.HostSide.SendAsync(RawIpcPeer.DroppedFrame(joined.SubscriptionId, 3));
        await joined.SendEventsAsync(7, "gap.a", 5, 6, 8);

        await joined.ReadAsync(4);
        Assert.Multiple(() =>
        {
            Assert.That(joined.Subscription.DroppedCount, Is.EqualTo(3), "the host's report counts against the subscription");
            Assert.That(joined.Participant.Health.DroppedCount(DropCause.Transport), Is.EqualTo(3 + 1),
                "the 3 reported once, not again from the jump 1 -> 5; then the unreported jump 6 -> 8");
        });
    }

    [Test]
    public async Task A_jump_across_a_reconnect_is_counted()
    {
        await using var joined = await JoinFakeHostAsync();
        await joined.SendEventsAsync(7, "gap.a", 1, 2);
        await joined.ReadAsync(2);

        // The host goes away; the participant reconnects and re-sends its subscription, which keeps its expectations.
        await joined.HostSide.DisposeAsync();
        await using var again = await joined.FakeHost.AcceptAsync();
        Assert.That((await again.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Hello));
        await again.SendAsync(RawIpcPeer.WelcomeFrame("fake"));
        var resubscribe = (await again.ReadFrameAsync())!;
        Assert.That(resubscribe.Type, Is.EqualTo(RawIpcPeer.Subscribe), "the subscription is re-sent");
        await again.SendAsync(RawIpcPeer.IdFrame(RawIpcPeer.Subscribed, BinaryPrimitives.ReadUInt32BigEndian(resubscribe.Body)));
        await again.SendAsync(RawIpcPeer.EventFrame(RawIpcPeer.Event, OnexEvent.Create("gap.a", ReadOnlyMemory<byte>.Empty), 7, 9));

        await joined.ReadAsync(1);
        Assert.That(joined.Participant.Health.DroppedCount(DropCause.Transport), Is.EqualTo(6),
            "events 3 to 8 were published while this participant was away");
    }

    [Test]
    public async Task A_new_subscription_starts_its_topics_afresh()
    {
        await using var joined = await JoinFakeHostAsync();
        await joined.SendEventsAsync(7, "gap.a", 1);
        await joined.ReadAsync(1);

        // Events 2..9 were not routed here (say an UNSUBSCRIBE and SUBSCRIBE crossed them); a new subscription forgets.
        var subscribing = joined.Participant.SubscribeAsync("gap.a").AsTask();
        var subscribe = (await joined.HostSide.ReadFrameAsync())!;
        await joined.HostSide.SendAsync(RawIpcPeer.IdFrame(RawIpcPeer.Subscribed, BinaryPrimitives.ReadUInt32BigEndian(subscribe.Body)));
        await using var second = await subscribing.WaitAsync(Timeout);
        await joined.SendEventsAsync(7, "gap.a", 10);

        await joined.ReadAsync(1);
        await second.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(joined.Participant.Health.DroppedCount(DropCause.Transport), Is.Zero);
    }

    [Test]
    public async Task A_version_1_event_frame_from_the_host_is_refused_not_misread()
    {
        await using var joined = await JoinFakeHostAsync();
        var notices = Notices(joined.Participant);

        await joined.HostSide.SendAsync(RawIpcPeer.Frame(RawIpcPeer.EventV1, OnexEventCodec.Default.Encode(OnexEvent.Create("gap.a", ReadOnlyMemory<byte>.Empty))));

        Assert.That(await joined.HostSide.ReadFrameAsync(), Is.Null, "the participant drops the connection");
        var notice = await notices.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Multiple(() =>
        {
            Assert.That(notice.State, Is.EqualTo(BusConnectionState.Disconnected));
            Assert.That(notice.Detail, Does.Contain("protocol version 1"), "the reason says what was wrong");
            Assert.That(joined.Subscription.Reader.TryRead(out _), Is.False, "nothing was delivered");
        });
    }

    [Test]
    public void Numbering_and_checking_allocate_nothing_per_event()
    {
        var numbering = new IpcEventNumbering();
        var check = new IpcGapCheck();
        var frame = IpcFrames.EncodeEvent(IpcFrameType.Publish, OnexEvent.Create("alloc.topic", new byte[8]), OnexEventCodec.Default, 1 << 20);
        const string topic = "alloc.topic";
        numbering.Stamp(frame, topic);
        check.Check(numbering.PublisherId, topic, 1);

        var before = GC.GetAllocatedBytesForCurrentThread();
        long lost = 0;
        for (ulong i = 2; i < 10_002; i++)
        {
            numbering.Stamp(frame, topic);
            var (publisher, sequence, _) = IpcFrames.ParseEvent(frame.AsMemory(IpcFrames.HeaderBytes));
            lost += check.Check(publisher, topic, sequence);
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Multiple(() =>
        {
            Assert.That(allocated, Is.Zero, "numbering and checking 10,000 events of a known topic allocate nothing");
            Assert.That(lost, Is.Zero, "consecutive numbers are no loss");
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(frame.AsSpan(IpcFrames.HeaderBytes + 8)), Is.EqualTo(10_001UL), "the last number");
        });
    }

    private static ChannelReader<BusNotice> Notices(IEventBus bus)
    {
        var notices = Channel.CreateUnbounded<BusNotice>();
        bus.Health.Notice += (_, n) => notices.Writer.TryWrite(n);
        return notices.Reader;
    }

    private async Task<Joined> JoinFakeHostAsync()
    {
        var fakeHost = new RawIpcHost(_root, "fake");
        var joining = IpcEventBus.JoinAsync(IpcEventBusOptions.Default with
        {
            SocketPath = fakeHost.SocketPath,
            ReconnectMinDelay = TimeSpan.FromMilliseconds(10),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(50),
        }).AsTask();
        var hostSide = await fakeHost.AcceptAsync();
        Assert.That((await hostSide.ReadFrameAsync())!.Type, Is.EqualTo(RawIpcPeer.Hello));
        await hostSide.SendAsync(RawIpcPeer.WelcomeFrame("fake"));
        var participant = await joining.WaitAsync(Timeout);
        var subscribing = participant.SubscribeAsync("gap.>", new SubscriptionOptions { Capacity = 100 }).AsTask();
        var subscribe = (await hostSide.ReadFrameAsync())!;
        var id = BinaryPrimitives.ReadUInt32BigEndian(subscribe.Body);
        await hostSide.SendAsync(RawIpcPeer.IdFrame(RawIpcPeer.Subscribed, id));
        return new Joined(fakeHost, hostSide, participant, await subscribing.WaitAsync(Timeout), id);
    }

    private sealed record Joined(RawIpcHost FakeHost, RawIpcPeer HostSide, IpcEventBus Participant, IEventSubscription Subscription, uint SubscriptionId)
        : IAsyncDisposable
    {
        public async Task SendEventsAsync(ulong publisherId, string topic, params ulong[] sequences)
        {
            foreach (var sequence in sequences)
                await HostSide.SendAsync(RawIpcPeer.EventFrame(RawIpcPeer.Event, OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty), publisherId, sequence));
        }

        /// <summary>Reads <paramref name="count"/> events from the subscription: by then the participant checked their numbers.</summary>
        public async Task ReadAsync(int count)
        {
            for (var i = 0; i < count; i++) await Subscription.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        }

        public async ValueTask DisposeAsync()
        {
            await Subscription.DisposeAsync();
            await Participant.DisposeAsync();
            await HostSide.DisposeAsync();
            FakeHost.Dispose();
        }
    }
}
