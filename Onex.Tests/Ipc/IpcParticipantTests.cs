using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Text;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Transports.Ipc;

namespace Onex.Tests.Ipc;

/// <summary>Joined participants: routing across participants, the subscription handshake, limits and reconnecting.</summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcParticipantTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private IpcTestRoot _root = null!;

    [SetUp]
    public void CreateRoot() => _root = new IpcTestRoot();

    [TearDown]
    public void RemoveRoot() => _root.Dispose();

    private IpcEventBusOptions HostOptions => IpcEventBusOptions.Default with { Name = "bus", RootDirectory = _root.Path };

    private static IpcEventBusOptions JoinOptions(IpcEventBus host) => IpcEventBusOptions.Default with { SocketPath = host.Endpoint };

    [Test]
    public async Task Event_from_a_participant_reaches_the_host_and_the_other_participants()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var publisher = await IpcEventBus.JoinAsync(JoinOptions(host));
        await using var other = await IpcEventBus.JoinAsync(JoinOptions(host));
        await using var atHost = await host.SubscribeAsync("orders.*");
        await using var atOther = await other.SubscribeAsync("orders.>");

        await publisher.PublishAsync(OnexEvent.Create("orders.created", "o-1"u8.ToArray()));

        Assert.Multiple(async () =>
        {
            Assert.That((await atHost.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Topic, Is.EqualTo("orders.created"), "host subscriber");
            Assert.That((await atOther.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Topic, Is.EqualTo("orders.created"), "other participant");
        });
    }

    [Test]
    public async Task Participant_with_two_matching_subscriptions_gets_the_event_once_per_subscription()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host));
        await using var wide = await participant.SubscribeAsync("a.>");
        await using var narrow = await participant.SubscribeAsync("a.b");
        await using var marker = await participant.SubscribeAsync("z.end");

        await host.PublishAsync(OnexEvent.Create("a.b", ReadOnlyMemory<byte>.Empty));
        await host.PublishAsync(OnexEvent.Create("z.end", ReadOnlyMemory<byte>.Empty));
        await marker.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(wide.Reader.Count, Is.EqualTo(1), "'a.>' should hold one copy");
            Assert.That(narrow.Reader.Count, Is.EqualTo(1), "'a.b' should hold one copy");
        });
    }

    [Test]
    public async Task Joined_participant_takes_the_bus_name_from_the_host()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { Name = "orders" });

        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.SocketPath });

        Assert.Multiple(() =>
        {
            Assert.That(participant.Name, Is.EqualTo("orders"));
            Assert.That(participant.IsHost, Is.False);
            Assert.That(participant.Endpoint, Is.EqualTo(host.Endpoint));
        });
    }

    [Test]
    public async Task Participant_can_join_by_root_directory_and_name()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { Name = "orders" });

        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { Name = "orders", RootDirectory = _root.Path });

        Assert.That(participant.SocketPath, Is.EqualTo(host.SocketPath));
    }

    [Test]
    public void Joining_where_no_host_runs_fails_with_Unavailable()
    {
        _root.CreateBusDirectory("bus");

        var ex = Assert.ThrowsAsync<UnavailableException>(async () =>
            await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = _root.SocketPathOf("bus") }));

        Assert.That(ex!.Message, Does.Contain(_root.SocketPathOf("bus")), "the message should name the socket path");
    }

    [Test]
    public void Joining_a_bus_whose_directory_does_not_exist_fails_with_Unavailable()
    {
        Assert.ThrowsAsync<UnavailableException>(async () =>
            await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = _root.SocketPathOf("nobody") }));
    }

    [Test]
    public async Task Subscribe_completes_only_once_the_host_acknowledged_it()
    {
        using var fakeHost = new RawIpcHost(_root, "fake");
        var joining = IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = fakeHost.SocketPath }).AsTask();
        await using var hostSide = await fakeHost.AcceptAsync();
        await hostSide.ReadFrameAsync();
        await hostSide.SendAsync(RawIpcPeer.WelcomeFrame("fake"));
        await using var participant = await joining.WaitAsync(Timeout);

        var subscribing = participant.SubscribeAsync("ack.me").AsTask();
        var subscribe = await hostSide.ReadFrameAsync();
        Assert.That(subscribe!.Type, Is.EqualTo(RawIpcPeer.Subscribe), "the participant should send SUBSCRIBE");
        Assert.That(Encoding.UTF8.GetString(subscribe.Body, 5, subscribe.Body.Length - 5), Is.EqualTo("ack.me"));
        Assert.That(subscribing.IsCompleted, Is.False, "SubscribeAsync must wait for SUBSCRIBED");

        await hostSide.SendAsync(RawIpcPeer.IdFrame(RawIpcPeer.Subscribed, BinaryPrimitives.ReadUInt32BigEndian(subscribe.Body)));

        await using var subscription = await subscribing.WaitAsync(Timeout);
        Assert.That(subscription.Pattern, Is.EqualTo("ack.me"));
    }

    [Test]
    public async Task Cancelled_subscribe_is_withdrawn_from_the_host()
    {
        using var fakeHost = new RawIpcHost(_root, "fake");
        var joining = IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = fakeHost.SocketPath }).AsTask();
        await using var hostSide = await fakeHost.AcceptAsync();
        await hostSide.ReadFrameAsync();
        await hostSide.SendAsync(RawIpcPeer.WelcomeFrame("fake"));
        await using var participant = await joining.WaitAsync(Timeout);
        using var cancel = new CancellationTokenSource();

        var subscribing = participant.SubscribeAsync("never.acked", cancellationToken: cancel.Token).AsTask();
        var subscribe = (await hostSide.ReadFrameAsync())!;
        await cancel.CancelAsync();

        Assert.That(async () => await subscribing, Throws.InstanceOf<OperationCanceledException>());
        var unsubscribe = (await hostSide.ReadFrameAsync())!;
        Assert.Multiple(() =>
        {
            Assert.That(unsubscribe.Type, Is.EqualTo(RawIpcPeer.Unsubscribe), "a cancelled subscription is withdrawn");
            Assert.That(unsubscribe.Body, Is.EqualTo(subscribe.Body[..4]), "for the same subscription id");
        });
    }

    [Test]
    public async Task Participant_refuses_to_subscribe_past_the_per_connection_limit()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host));
        var subscriptions = new List<IEventSubscription>();
        for (var i = 0; i < 4096; i++) subscriptions.Add(await participant.SubscribeAsync($"many.s{i}"));

        var ex = Assert.ThrowsAsync<InvalidArgumentException>(async () => await participant.SubscribeAsync("one.more"));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(participant.IsConnected, Is.True, "refusing locally must not cost the connection");
        foreach (var subscription in subscriptions) await subscription.DisposeAsync();
    }

    [Test]
    public async Task Publishing_more_than_the_frame_limit_throws_MessageTooLarge()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { MaxFrameBytes = 4096 });
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host));

        Assert.Multiple(() =>
        {
            Assert.ThrowsAsync<MessageTooLargeException>(async () =>
                await participant.PublishAsync(OnexEvent.Create("big.one", new byte[8192])), "participant, limited by the host's announced limit");
            Assert.ThrowsAsync<MessageTooLargeException>(async () =>
                await host.PublishAsync(OnexEvent.Create("big.one", new byte[8192])), "host");
        });
    }

    [Test]
    public async Task Participant_is_still_connected_after_its_publish_was_refused_as_too_large()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions with { MaxFrameBytes = 4096 });
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host));
        await using var subscription = await host.SubscribeAsync("fine.>");
        Assert.ThrowsAsync<MessageTooLargeException>(async () => await participant.PublishAsync(OnexEvent.Create("fine.big", new byte[8192])));

        await participant.PublishAsync(OnexEvent.Create("fine.small", new byte[16]));

        Assert.That((await subscription.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Topic, Is.EqualTo("fine.small"));
    }

    [Test]
    public async Task Participant_reconnects_when_the_host_comes_back_and_receives_again()
    {
        var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host) with
        {
            ReconnectMinDelay = TimeSpan.FromMilliseconds(10),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
        });
        await using var subscription = await participant.SubscribeAsync("probe.>");

        await host.DisposeAsync();
        await using var restarted = await IpcEventBus.HostAsync(HostOptions);

        var received = await PublishProbesUntilOneArrivesAsync(restarted, subscription);
        Assert.That(received.Topic, Is.EqualTo("probe.after-restart"), "the re-sent subscription should route the new host's events");
    }

    [Test]
    public async Task Publishing_while_the_host_is_gone_throws_Unavailable()
    {
        var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host) with { ReconnectMinDelay = TimeSpan.FromSeconds(1), ReconnectMaxDelay = TimeSpan.FromSeconds(1) });
        await using var subscription = await participant.SubscribeAsync("gone.>");
        var ended = subscription.Reader.WaitToReadAsync().AsTask();

        await host.DisposeAsync();
        await WaitUntilAsync(() => !participant.IsConnected, "the participant to notice the host is gone");

        Assert.ThrowsAsync<UnavailableException>(async () => await participant.PublishAsync(OnexEvent.Create("gone.event", ReadOnlyMemory<byte>.Empty)));
        Assert.That(ended.IsCompleted, Is.False, "subscriptions stay open across the outage");
    }

    [Test]
    public async Task Participant_publishes_again_after_reconnecting()
    {
        var host = await IpcEventBus.HostAsync(HostOptions);
        await using var participant = await IpcEventBus.JoinAsync(JoinOptions(host) with
        {
            ReconnectMinDelay = TimeSpan.FromMilliseconds(10),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
        });
        await host.DisposeAsync();
        await WaitUntilAsync(() => !participant.IsConnected, "the participant to notice the host is gone");
        await using var restarted = await IpcEventBus.HostAsync(HostOptions);
        await using var atHost = await restarted.SubscribeAsync("back.>");

        await WaitUntilAsync(() => participant.IsConnected, "the participant to reconnect");
        await participant.PublishAsync(OnexEvent.Create("back.online", ReadOnlyMemory<byte>.Empty));

        Assert.That((await atHost.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Topic, Is.EqualTo("back.online"));
    }

    [Test]
    public async Task Disposing_a_participant_sends_what_it_already_published()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions);
        await using var atHost = await host.SubscribeAsync("last.>", new SubscriptionOptions { Capacity = 2000 });
        var participant = await IpcEventBus.JoinAsync(JoinOptions(host));

        for (var i = 0; i < 1000; i++) await participant.PublishAsync(OnexEvent.Create("last.words", new byte[256]));
        await participant.DisposeAsync();

        for (var i = 0; i < 1000; i++) await atHost.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(atHost.Reader.Count, Is.Zero);
    }

    [Test]
    public async Task Disposing_the_host_completes_pending_reads_on_the_host()
    {
        var host = await IpcEventBus.HostAsync(HostOptions);
        var subscription = await host.SubscribeAsync("idle.>");
        var reading = subscription.Reader.WaitToReadAsync().AsTask();

        await host.DisposeAsync();

        Assert.That(await reading.WaitAsync(Timeout), Is.False, "the pending read should end without an event");
    }

    private static async Task<OnexEvent> PublishProbesUntilOneArrivesAsync(IpcEventBus publisher, IEventSubscription subscription)
    {
        // The participant reconnects on its own schedule; probe until one gets through, bounded in count and time.
        var arrived = subscription.Reader.ReadAsync().AsTask();
        for (var attempt = 0; attempt < 500 && !arrived.IsCompleted; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create("probe.after-restart", ReadOnlyMemory<byte>.Empty));
            await Task.WhenAny(arrived, Task.Delay(TimeSpan.FromMilliseconds(20)));
        }
        return await arrived.WaitAsync(Timeout);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        // Connection state has nothing to await; poll it, bounded.
        for (var attempt = 0; !condition(); attempt++)
        {
            if (attempt >= 1000) Assert.Fail($"Timed out waiting for {what}.");
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }
    }
}
