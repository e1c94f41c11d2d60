using System.Diagnostics;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Events;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Buses;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Tests.Buses;

/// <summary>
/// A host that comes back (issue 11 item 1, PROTOCOL.md "A host that comes back"): a bus host process killed with
/// SIGKILL and started again with the same node id takes its bus and its ports back, and joined participants carry on
/// by themselves; a host that comes back on other endpoints is followed through the registry's change stream.
/// </summary>
public class HostRestartTests
{
    private static readonly TimeSpan StartLimit = HostDrill.StartLimit;
    private static readonly TimeSpan DeliveryLimit = HostDrill.DeliveryLimit;

    [Test]
    public async Task Zmq_host_killed_and_restarted_with_its_node_id_file_takes_its_bus_back_and_participants_carry_on()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var directory = new TemporaryDirectory();
        var idFile = Path.Combine(directory.Path, "node-id");
        const string name = "restart-kill";
        string[] hostArgs =
        [
            "--registry", registry.Host.RouterEndpoint, "--registry-pub", registry.Host.PubEndpoint,
            "bus", "host", "--backend", "zmq", "--name", name, "--use-registry", "--node-id-file", idFile,
            "--publish-topic", "host.tick", "--publish-interval", "5",
        ];

        var first = OnexProcess.Start(hostArgs);
        HostDrill.Hosting firstHosting;
        try
        {
            firstHosting = HostDrill.Hosting.Of(await first.ReadJsonLineAsync("the first host's hosting line", StartLimit));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }

        await using var subscriberClient = await registry.ConnectAsync();
        await using var publisherClient = await registry.ConnectAsync();
        await using var subscriber = await HostDrill.JoinAsync(BusKinds.Zmq, name, subscriberClient);
        await using var publisher = await HostDrill.JoinAsync(BusKinds.Zmq, name, publisherClient);
        var states = HostDrill.StatesOf(subscriber);
        await using var ticks = await subscriber.SubscribeAsync("host.>", new SubscriptionOptions { Capacity = 100_000 });
        await using var counted = await subscriber.SubscribeAsync("count.>", new SubscriptionOptions { Capacity = 100_000 });

        // A joined participant publishes numbered events all through the outage.
        using var stopPublishing = new CancellationTokenSource();
        var published = 0;
        var publishing = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(2));
            try
            {
                while (await timer.WaitForNextTickAsync(stopPublishing.Token))
                    await publisher.PublishAsync(OnexEvent.Create("count.data", BitConverter.GetBytes(Interlocked.Increment(ref published))));
            }
            catch (OperationCanceledException) when (stopPublishing.IsCancellationRequested)
            {
                // Done publishing.
            }
        });
        var receivedCounted = 0;
        var lastCounted = Channel.CreateUnbounded<int>();
        var reading = Task.Run(async () =>
        {
            await foreach (var evt in counted)
            {
                receivedCounted++;
                lastCounted.Writer.TryWrite(BitConverter.ToInt32(evt.Payload.Span));
            }
        });

        // The first run's ticks and the joined publisher's events arrive (a loss is counted against the last event
        // seen from a publisher), then the host dies without a word.
        await HostDrill.ReadTicksUntilAsync(ticks, (n, _) => n >= 20, "20 ticks of the first host run");
        await HostDrill.ReadUntilAsync(lastCounted.Reader, n => n >= 20, "20 events of the joined publisher before the kill");
        var outage = Stopwatch.StartNew();
        Process.GetProcessById(first.Id).Kill(); // SIGKILL
        await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await first.DisposeAsync();
        var disconnected = await HostDrill.NextStateAsync(states, "the subscriber's Disconnected notice after the kill");
        Assert.That(disconnected.State, Is.EqualTo(BusConnectionState.Disconnected), $"first notice after the kill: {disconnected.Detail}");

        // Started again with the same node id file: same node, same ports, nothing for the participants to do.
        await using var second = OnexProcess.Start(hostArgs);
        var secondHosting = HostDrill.Hosting.Of(await second.ReadJsonLineAsync("the restarted host's hosting line", StartLimit));
        Assert.Multiple(() =>
        {
            Assert.That(secondHosting.NodeId, Is.EqualTo(firstHosting.NodeId), "the node id file gives the restarted host the same node id");
            Assert.That(secondHosting.Endpoints, Is.EqualTo(firstHosting.Endpoints), "the restarted host took its ports back");
        });
        var connected = await HostDrill.NextStateAsync(states, "the subscriber's Connected notice after the restart");
        Assert.That(connected.State, Is.EqualTo(BusConnectionState.Connected), $"notice after the restart: {connected.Detail}");
        await HostDrill.ReadTicksUntilAsync(ticks, (_, pid) => pid == second.Id, "a tick of the restarted host");
        outage.Stop();

        var record = (await subscriberClient.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = name }))
            .Buses!.Single(b => b.Name == name);
        Assert.That((record.NodeId, record.Endpoints), Is.EqualTo((firstHosting.NodeId, (IReadOnlyList<string>)firstHosting.Endpoints.ToArray())),
            "the registry lists the bus under the same node on the same endpoints");

        await stopPublishing.CancelAsync();
        await publishing;
        var last = Volatile.Read(ref published);
        await HostDrill.ReadUntilAsync(lastCounted.Reader, n => n == last, $"the joined publisher's last event ({last}) after the restart");
        var lost = subscriber.Health.DroppedCount(DropCause.Transport);
        TestContext.Out.WriteLine(
            $"zmq tcp host kill -9 + restart: outage (kill to first new tick) {outage.Elapsed.TotalMilliseconds:0} ms; joined publisher published {last}, " +
            $"received {receivedCounted}, counted lost {lost}; notices: {disconnected.Detail} / {connected.Detail}");
        Assert.That(receivedCounted + lost, Is.EqualTo(last), "every event of the joined publisher was received or counted as lost in transit");
        second.CloseInput();
        Assert.That(await second.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(0), "the restarted host stops cleanly");
        await counted.DisposeAsync();
        await reading;
    }

    [Test]
    public async Task Joined_participant_follows_its_bus_when_the_host_comes_back_on_other_ports()
    {
        await using var registry = await TestRegistry.StartAsync();
        var nodeId = $"host-{Guid.NewGuid():N}"[..16];
        const string name = "restart-move";
        await using var firstClient = await registry.ConnectAsync(nodeId);
        var first = (RegisteredEventBus)await EventBusFactory.CreateAsync(
            EventBusOptions.Default with { Backend = BusKinds.Zmq, Name = name, Registry = firstClient });
        await using var joinClient = await registry.ConnectAsync();
        await using var joined = (ZmqEventBus)await HostDrill.JoinAsync(BusKinds.Zmq, name, joinClient);
        var states = HostDrill.StatesOf(joined);
        await using var subscription = await joined.SubscribeAsync("moved.>");
        var oldSubscribe = joined.SubscribeEndpoint;

        // The host's process "dies": its sockets close, its registration and leases stay. Meanwhile a process the
        // registry does not know binds one of its ports.
        await first.Inner.DisposeAsync();
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, new Uri(oldSubscribe).Port);
        squatter.Start();

        // The node comes back (same id): it takes its ports back, finds one busy, hosts on new ports and updates the
        // registration (bus.updated), which the joined participant follows by itself.
        await using var secondClient = await registry.ConnectAsync(nodeId);
        await using var second = (RegisteredEventBus)await EventBusFactory.CreateAsync(
            EventBusOptions.Default with { Backend = BusKinds.Zmq, Name = name, Registry = secondClient });
        var moved = (ZmqEventBus)second.Inner;
        Assert.That(moved.SubscribeEndpoint, Is.Not.EqualTo(oldSubscribe), "the busy port was not reused");

        var notices = new List<BusNotice>();
        using (var wait = new CancellationTokenSource(StartLimit))
        {
            try
            {
                BusNotice notice;
                do notices.Add(notice = await states.Reader.ReadAsync(wait.Token));
                while (!(notice.State == BusConnectionState.Connected && notice.Detail.Contains(moved.SubscribeEndpoint, StringComparison.Ordinal)));
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"no Connected notice naming {moved.SubscribeEndpoint}; saw: {string.Join(" | ", notices.Select(n => $"{n.State}: {n.Detail}"))}");
            }
        }
        Assert.That(notices.Select(n => n.State), Does.Contain(BusConnectionState.Disconnected), "the move was announced as a connection change");
        Assert.That((joined.PublishEndpoint, joined.SubscribeEndpoint), Is.EqualTo((moved.PublishEndpoint, moved.SubscribeEndpoint)));

        // Connected means the TCP connection is up; the subscription may still be on its way to the new host (ZeroMQ's
        // slow joiner), so each direction publishes until an event arrives, bounded.
        Assert.That((await PublishUntilReceivedAsync(second, "moved.down", subscription))?.Topic, Is.EqualTo("moved.down"),
            "the new host's event reaches the participant");
        await using var atHost = await second.SubscribeAsync("moved.>");
        Assert.That((await PublishUntilReceivedAsync(joined, "moved.up", atHost))?.Topic, Is.EqualTo("moved.up"),
            "the participant's event reaches the new host");
    }

    private static async Task<OnexEvent?> PublishUntilReceivedAsync(IEventBus publisher, string topic, IEventSubscription subscription)
    {
        for (var attempt = 1; attempt <= 50; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create(topic, BitConverter.GetBytes(attempt)));
            if (await Onex.Tests.Zmq.ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(200)) is { } received) return received;
        }
        return null;
    }

    private static async Task<OnexEvent?> ReadWithinAsync(IEventSubscription subscription)
    {
        using var wait = new CancellationTokenSource(DeliveryLimit);
        try
        {
            return await subscription.Reader.ReadAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
