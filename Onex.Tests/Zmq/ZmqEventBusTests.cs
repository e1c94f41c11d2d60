using System.Threading.Channels;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>ZeroMQ-specific behaviour of <see cref="ZmqEventBus"/> beyond the conformance suite.</summary>
public class ZmqEventBusTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [TestCase(false, TestName = "First_event_after_SubscribeAsync_arrives_without_probing(tcp)")]
    [TestCase(true, TestName = "First_event_after_SubscribeAsync_arrives_without_probing(ipc)")]
    public async Task First_event_after_SubscribeAsync_arrives_without_probing(bool ipc)
    {
        await using var host = await ZmqTestBus.HostAsync("handshake", ipc);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");

        // Fresh filters each round: every one must be live when SubscribeAsync returns, so one publish suffices.
        for (var round = 0; round < 20; round++)
        {
            var topic = $"fresh.r{round}.event";
            await using var subscription = await joined.SubscribeAsync(topic);
            await host.PublishAsync(OnexEvent.Create(topic, new byte[] { (byte)round }));

            var received = await ReadWithinAsync(subscription, Wait);
            Assert.That(received?.Topic, Is.EqualTo(topic), $"round {round}: the single event published right after SubscribeAsync did not arrive");
        }
    }

    [Test]
    public async Task First_event_of_a_participant_that_just_joined_arrives()
    {
        await using var host = await ZmqTestBus.HostAsync("publisher-ready", ipc: false);
        await using var subscription = await host.SubscribeAsync("joiner.>");

        for (var round = 0; round < 10; round++)
        {
            await using var joined = await ZmqTestBus.JoinAsync(host, $"joiner-{round}");
            await joined.PublishAsync(OnexEvent.Create($"joiner.r{round}", ReadOnlyMemory<byte>.Empty));

            var received = await ReadWithinAsync(subscription, Wait);
            Assert.That(received?.Topic, Is.EqualTo($"joiner.r{round}"),
                $"round {round}: the first event of a participant whose JoinAsync had returned did not arrive");
        }
    }

    [Test]
    public async Task Topics_that_pass_the_prefix_filter_but_not_the_pattern_are_not_delivered()
    {
        await using var host = await ZmqTestBus.HostAsync("prefix", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        // ZeroMQ filters on the literal prefix only: 'orders.created' lets 'orders.created2' and 'orders.createdAt.x' through.
        await using var literal = await joined.SubscribeAsync("orders.created");
        await using var wildcard = await joined.SubscribeAsync("orders.*.paid");

        foreach (var topic in new[] { "orders.created2", "orders.createdAt.x", "orders.a.paid.late", "orders.paid", "orders.created", "orders.b.paid" })
            await host.PublishAsync(OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty));

        Assert.That((await ReadWithinAsync(literal, Wait))?.Topic, Is.EqualTo("orders.created"), "literal pattern got a prefix-only match");
        Assert.That((await ReadWithinAsync(wildcard, Wait))?.Topic, Is.EqualTo("orders.b.paid"), "wildcard pattern got a prefix-only match");
    }

    [TestCase(false, TestName = "Two_participants_in_one_process_exchange_events_both_ways(tcp)")]
    [TestCase(true, TestName = "Two_participants_in_one_process_exchange_events_both_ways(ipc)")]
    public async Task Two_participants_in_one_process_exchange_events_both_ways(bool ipc)
    {
        await using var host = await ZmqTestBus.HostAsync("two-way", ipc);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        await using var atHost = await host.SubscribeAsync("to.host");
        await using var atJoined = await joined.SubscribeAsync("to.joined");

        await host.PublishAsync(OnexEvent.Create("to.joined", "from host"u8.ToArray()));
        await joined.PublishAsync(OnexEvent.Create("to.host", "from joined"u8.ToArray()));

        var atJoinedEvent = await ReadWithinAsync(atJoined, Wait);
        var atHostEvent = await ReadWithinAsync(atHost, Wait);
        Assert.Multiple(() =>
        {
            Assert.That(atJoinedEvent?.Payload.ToArray(), Is.EqualTo("from host"u8.ToArray()), "host -> joined");
            Assert.That(atHostEvent?.Payload.ToArray(), Is.EqualTo("from joined"u8.ToArray()), "joined -> host");
            Assert.That(atHostEvent?.SourceNodeId, Is.EqualTo("joined"), "the joined participant's NodeId should be stamped on its event");
        });
    }

    [Test]
    public async Task Concurrent_callers_on_one_participant_each_keep_their_order()
    {
        const int callers = 4, perCaller = 250;
        await using var host = await ZmqTestBus.HostAsync("concurrent", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        await using var subscription = await joined.SubscribeAsync("caller.*", new SubscriptionOptions { Capacity = callers * perCaller });

        await Task.WhenAll(Enumerable.Range(0, callers).Select(caller => Task.Run(async () =>
        {
            for (var i = 0; i < perCaller; i++)
                await host.PublishAsync(OnexEvent.Create($"caller.c{caller}", BitConverter.GetBytes(i)));
        })));

        var received = new List<OnexEvent>();
        while (received.Count < callers * perCaller && await ReadWithinAsync(subscription, Wait) is { } evt)
            received.Add(evt);
        Assert.That(received, Has.Count.EqualTo(callers * perCaller), "events were lost");
        for (var caller = 0; caller < callers; caller++)
            Assert.That(received.Where(e => e.Topic == $"caller.c{caller}").Select(e => BitConverter.ToInt32(e.Payload.Span)),
                Is.EqualTo(Enumerable.Range(0, perCaller)), $"caller {caller}'s events arrived out of order");
    }

    [Test]
    public async Task Host_exposes_the_bound_endpoints_and_joiners_use_them()
    {
        var options = await ZmqTestBus.TcpOptionsAsync("endpoints");

        await using var host = await ZmqEventBus.HostAsync(options);
        await using var joined = await ZmqEventBus.JoinAsync(options with { NodeId = "joined" });

        Assert.Multiple(() =>
        {
            Assert.That(host.PublishEndpoint, Is.EqualTo(options.PublishEndpoint), "publish endpoint");
            Assert.That(host.SubscribeEndpoint, Is.EqualTo(options.SubscribeEndpoint), "subscribe endpoint");
            Assert.That(host.IsHost, Is.True, "HostAsync makes a host");
            Assert.That(joined.IsHost, Is.False, "JoinAsync does not");
        });
    }

    [Test]
    public async Task Host_on_port_zero_reports_the_ports_it_bound()
    {
        var options = ZmqEventBusOptions.Default with
        {
            Name = "port-zero",
            PublishEndpoint = "tcp://127.0.0.1:0",
            SubscribeEndpoint = "tcp://127.0.0.1:0",
        };

        await using var host = await ZmqEventBus.HostAsync(options);
        await using var joined = await ZmqEventBus.JoinAsync(host.Options with { NodeId = "joined" });

        Assert.That(host.PublishEndpoint, Does.Match(@"^tcp://127\.0\.0\.1:[1-9][0-9]*$"), "publish endpoint should carry the chosen port");
        Assert.That(host.SubscribeEndpoint, Is.Not.EqualTo(host.PublishEndpoint), "two distinct ports");
    }

    [Test]
    public async Task Hosting_on_an_endpoint_in_use_fails_with_port_unavailable_naming_it()
    {
        var options = await ZmqTestBus.TcpOptionsAsync("in-use");
        await using var first = await ZmqEventBus.HostAsync(options);

        var ex = Assert.ThrowsAsync<PortUnavailableException>(async () => await ZmqEventBus.HostAsync(options));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.PortUnavailable));
        Assert.That(ex.Message, Does.Contain(options.PublishEndpoint));
    }

    [Test]
    public async Task Joining_before_the_host_starts_completes_once_it_does()
    {
        var options = await ZmqTestBus.TcpOptionsAsync("late-host");
        var joining = ZmqEventBus.JoinAsync(options with { NodeId = "early" }).AsTask();

        await using var host = await ZmqEventBus.HostAsync(options);
        await using var joined = await joining.WaitAsync(Wait);

        await using var subscription = await host.SubscribeAsync("late.>");
        await joined.PublishAsync(OnexEvent.Create("late.hello", ReadOnlyMemory<byte>.Empty));
        Assert.That((await ReadWithinAsync(subscription, Wait))?.SourceNodeId, Is.EqualTo("early"),
            "the participant that joined before the host should publish through it");
    }

    [Test]
    public async Task Joining_where_no_forwarder_listens_fails_with_unavailable_after_the_handshake_timeout()
    {
        var options = (await ZmqTestBus.TcpOptionsAsync("nobody-home")) with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) };

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await ZmqEventBus.JoinAsync(options));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.Unavailable));
        Assert.That(ex.Message, Does.Contain(options.SubscribeEndpoint), "the error should name the endpoint it tried");
    }

    [TestCase("", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", TestName = "Options_without_a_name_are_rejected")]
    [TestCase("bus", "", "tcp://127.0.0.1:2", TestName = "Options_without_a_publish_endpoint_are_rejected")]
    [TestCase("bus", "tcp://127.0.0.1:1", "", TestName = "Options_without_a_subscribe_endpoint_are_rejected")]
    [TestCase("bus", "tcp://127.0.0.1:1", "tcp://127.0.0.1:1", TestName = "Options_with_one_endpoint_for_both_sides_are_rejected")]
    [TestCase("bus", "tcp://127.0.0.1:abc", "tcp://127.0.0.1:2", TestName = "Options_with_a_non_numeric_port_are_rejected")]
    [TestCase("bus", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:2", TestName = "Options_with_a_port_out_of_range_are_rejected")]
    [TestCase("bus", "tcp://127.0.0.1:1", "tcp://127.0.0.1", TestName = "Options_with_a_port_missing_are_rejected")]
    [TestCase("bus", "udp://127.0.0.1:1", "tcp://127.0.0.1:2", TestName = "Options_with_an_unknown_transport_are_rejected")]
    public void Invalid_options_are_rejected_with_ArgumentException(string name, string publish, string subscribe)
    {
        var options = ZmqEventBusOptions.Default with { Name = name, PublishEndpoint = publish, SubscribeEndpoint = subscribe };

        Assert.ThrowsAsync(Is.InstanceOf<ArgumentException>(), async () => await ZmqEventBus.JoinAsync(options));
    }

    [Test]
    public async Task Publishing_past_the_size_limit_fails_with_too_large()
    {
        var options = (await ZmqTestBus.TcpOptionsAsync("too-large")) with
        {
            Socket = ZmqSocketOptions.Default with { CodecLimits = new EventCodecLimits { MaxPayloadBytes = 1024, MaxFrameBytes = 2048 } },
        };
        await using var host = await ZmqEventBus.HostAsync(options);

        var ex = Assert.ThrowsAsync<MessageTooLargeException>(async () => await host.PublishAsync(OnexEvent.Create("big.event", new byte[1025])));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.TooLarge));
    }

    [Test]
    public async Task A_full_wait_mode_subscription_never_pauses_the_others_and_its_drops_are_counted()
    {
        await using var host = await ZmqTestBus.HostAsync("paused", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        await using var stuck = await joined.SubscribeAsync("pause.>", new SubscriptionOptions { Capacity = 1, FullMode = BoundedChannelFullMode.Wait });
        await using var other = await joined.SubscribeAsync("pause.>", new SubscriptionOptions { Capacity = 64 });

        // 'stuck' is never read: it takes the first event and must drop the other two, without holding up 'other'.
        await host.PublishAsync(OnexEvent.Create("pause.one", ReadOnlyMemory<byte>.Empty));
        await host.PublishAsync(OnexEvent.Create("pause.two", ReadOnlyMemory<byte>.Empty));
        await host.PublishAsync(OnexEvent.Create("pause.three", ReadOnlyMemory<byte>.Empty));
        Assert.That((await ReadWithinAsync(other, Wait))?.Topic, Is.EqualTo("pause.one"));
        Assert.That((await ReadWithinAsync(other, Wait))?.Topic, Is.EqualTo("pause.two"));
        Assert.That((await ReadWithinAsync(other, Wait))?.Topic, Is.EqualTo("pause.three"), "the other subscription keeps receiving");

        Assert.Multiple(() =>
        {
            Assert.That(stuck.DroppedCount, Is.EqualTo(2), "the full Wait-mode subscription lost two events, and says so");
            Assert.That(joined.Health.DroppedCount(DropCause.SubscriberQueue), Is.EqualTo(2));
        });
    }

    [Test]
    public async Task A_full_publish_queue_in_wait_mode_holds_the_publisher_and_loses_nothing()
    {
        var options = (await ZmqTestBus.TcpOptionsAsync("pub-wait")) with
        {
            PublishQueue = new ZmqPublishQueueOptions { Capacity = 4, MaxBytes = 1024 },
        };
        await using var host = await ZmqEventBus.HostAsync(options);
        await using var joined = await ZmqEventBus.JoinAsync(options with { NodeId = "joined" });
        const int sent = 2_000;
        await using var subscription = await host.SubscribeAsync("wait.>", new SubscriptionOptions { Capacity = sent });

        for (var i = 0; i < sent; i++) await joined.PublishAsync(OnexEvent.Create("wait.data", BitConverter.GetBytes(i)));

        var numbers = new List<int>();
        for (var i = 0; i < sent; i++)
            numbers.Add(BitConverter.ToInt32((await ReadWithinAsync(subscription, Wait) ?? throw new AssertionException($"event {i} of {sent} did not arrive")).Payload.Span));
        Assert.Multiple(() =>
        {
            Assert.That(numbers, Is.EqualTo(Enumerable.Range(0, sent)), "in order, none lost");
            Assert.That(joined.PublishDroppedCount, Is.Zero);
        });
    }

    [Test]
    public async Task Test_ipc_endpoints_occupy_the_ports_leased_for_them()
    {
        var ports = await TestPorts.LeaseAsync(1);
        var endpoint = ZmqTestBus.IpcNameOnPort($"ipc://{Path.GetTempPath()}onex-zmq-tests/{Guid.NewGuid():N}", ports[0]);
        await using var publisher = ZmqEventPublisher.Bind(endpoint);

        // NetMQ's ipc:// listens on TCP 127.0.0.1 at the port it derives from the name: that port must be the leased one.
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        Assert.That(() => probe.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, ports[0])),
            Throws.InstanceOf<System.Net.Sockets.SocketException>(), $"{endpoint} should be listening on leased port {ports[0]}");
    }

    /// <summary>Reads one event, or returns null when none arrives within <paramref name="timeout"/>.</summary>
    internal static async Task<OnexEvent?> ReadWithinAsync(IEventSubscription subscription, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await subscription.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return null;
        }
    }
}
