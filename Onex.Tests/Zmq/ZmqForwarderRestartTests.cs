using Onex.Bus;
using Onex.Events;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>
/// The host goes away and a new host binds the same endpoints: joined participants reconnect on their own. What was
/// published while nobody forwarded is lost (at most once), so these tests publish in a bounded loop until one
/// event gets through, reading with a short timeout each time; they never sleep.
/// </summary>
public class ZmqForwarderRestartTests
{
    private const int MaxAttempts = 200;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromMilliseconds(50);

    [TestCase(false, TestName = "Joined_participant_receives_again_after_the_forwarder_restarts(tcp)")]
    [TestCase(true, TestName = "Joined_participant_receives_again_after_the_forwarder_restarts(ipc)")]
    public async Task Joined_participant_receives_again_after_the_forwarder_restarts(bool ipc)
    {
        var host = await ZmqTestBus.HostAsync("restart-receive", ipc);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        await using var subscription = await joined.SubscribeAsync("restart.>");
        var endpoints = host.Options;
        await host.DisposeAsync();

        await using var newHost = await ZmqEventBus.HostAsync(endpoints);
        var (received, attempts) = await PublishUntilReceivedAsync(newHost, subscription);

        Assert.That(received, Is.Not.Null, $"no event reached the joined participant's old subscription in {attempts} attempts after the restart");
    }

    [TestCase(false, TestName = "Joined_participant_publishes_again_after_the_forwarder_restarts(tcp)")]
    [TestCase(true, TestName = "Joined_participant_publishes_again_after_the_forwarder_restarts(ipc)")]
    public async Task Joined_participant_publishes_again_after_the_forwarder_restarts(bool ipc)
    {
        var host = await ZmqTestBus.HostAsync("restart-publish", ipc);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        var endpoints = host.Options;
        await host.DisposeAsync();

        await using var newHost = await ZmqEventBus.HostAsync(endpoints);
        await using var subscription = await newHost.SubscribeAsync("restart.>");
        var (received, attempts) = await PublishUntilReceivedAsync(joined, subscription);

        Assert.That(received?.SourceNodeId, Is.EqualTo("joined"), $"no event from the joined participant arrived in {attempts} attempts after the restart");
    }

    [Test]
    public async Task Joined_participant_is_told_when_its_connection_drops_and_when_it_is_back()
    {
        var host = await ZmqTestBus.HostAsync("restart-state", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        var states = System.Threading.Channels.Channel.CreateUnbounded<BusConnectionState>();
        joined.Health.Notice += (_, notice) =>
        {
            if (notice.Kind == BusNoticeKind.ConnectionChanged) states.Writer.TryWrite(notice.State);
        };
        Assert.That(joined.Health.State, Is.EqualTo(BusConnectionState.Connected), "connected once joined");
        var endpoints = host.Options;

        await host.DisposeAsync();
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.That(await states.Reader.ReadAsync(wait.Token), Is.EqualTo(BusConnectionState.Disconnected), "the socket monitor saw the host go");
        Assert.That(joined.Health.State, Is.EqualTo(BusConnectionState.Disconnected));

        await using var newHost = await ZmqEventBus.HostAsync(endpoints);
        Assert.That(await states.Reader.ReadAsync(wait.Token), Is.EqualTo(BusConnectionState.Connected), "ZeroMQ reconnected to the new host");
        Assert.That(joined.Health.State, Is.EqualTo(BusConnectionState.Connected));
    }

    [Test]
    public async Task Events_lost_while_the_forwarder_restarts_are_counted_at_the_subscriber()
    {
        var host = await ZmqTestBus.HostAsync("restart-count", ipc: false);
        await using var publisher = await ZmqTestBus.JoinAsync(host, "publisher");
        await using var subscriber = await ZmqTestBus.JoinAsync(host, "subscriber");
        await using var subscription = await subscriber.SubscribeAsync("count.>", new SubscriptionOptions { Capacity = 100_000 });
        var published = 0;
        var received = 0;
        async Task PublishAsync(int count)
        {
            for (var i = 0; i < count; i++)
                await publisher.PublishAsync(OnexEvent.Create("count.data", BitConverter.GetBytes(++published)));
        }
        async Task ReadUntilAsync(int last)
        {
            while (await ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromSeconds(10)) is { } evt)
            {
                received++;
                if (BitConverter.ToInt32(evt.Payload.Span) == last) return;
            }
            Assert.Fail($"event {last} never arrived ({received} received)");
        }

        await PublishAsync(100);
        await ReadUntilAsync(published);
        var endpoints = host.Options;
        await host.DisposeAsync();
        await PublishAsync(500);
        await using var newHost = await ZmqEventBus.HostAsync(endpoints);
        for (var attempt = 1; ; attempt++)
        {
            await PublishAsync(1);
            if (await ZmqEventBusTests.ReadWithinAsync(subscription, ReadTimeout) is not null)
            {
                received++;
                break;
            }
            Assert.That(attempt, Is.LessThan(MaxAttempts), "no event got through after the restart");
        }
        await PublishAsync(100);
        await ReadUntilAsync(published);

        var lost = subscriber.Health.DroppedCount(DropCause.Transport);
        TestContext.Out.WriteLine($"published {published}, received {received}, counted lost {lost}");
        Assert.That(received + lost, Is.EqualTo(published), "every event published was either received or counted as lost in transit");
    }

    private static async Task<(OnexEvent? Received, int Attempts)> PublishUntilReceivedAsync(IEventBus publisher, IEventSubscription subscription)
    {
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create("restart.ping", BitConverter.GetBytes(attempt)));
            var received = await ZmqEventBusTests.ReadWithinAsync(subscription, ReadTimeout);
            if (received is not null) return (received, attempt);
        }
        return (null, MaxAttempts);
    }
}
