using System.Threading.Channels;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Ipc;
using Onex.Transports.Buses;
using Onex.Transports.Ipc;
using Onex.Transports.Registry;

namespace Onex.Tests.Buses;

/// <summary>
/// A Unix-socket bus host that comes back at another socket path (issue 11 item 1): its joined participants follow
/// <c>bus.updated</c> from the registry to the new path by themselves, report the outage, and events flow again.
/// </summary>
public class IpcHostMoveTests
{
    private static readonly TimeSpan NoticeLimit = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Joined_ipc_participants_follow_their_bus_when_the_host_comes_back_at_another_path()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var firstRoot = new IpcTestRoot();
        using var secondRoot = new IpcTestRoot();
        var nodeId = $"host-{Guid.NewGuid():N}"[..16];
        const string name = "ipc-move";
        await using var firstClient = await registry.ConnectAsync(nodeId);
        var first = (RegisteredEventBus)await EventBusFactory.CreateAsync(HostOptions(name, firstClient, firstRoot));
        var oldPath = ((IpcEventBus)first.Inner).SocketPath;

        await using var subscriberClient = await registry.ConnectAsync();
        await using var publisherClient = await registry.ConnectAsync();
        await using var subscriber = (IpcEventBus)await HostDrill.JoinAsync(BusKinds.Ipc, name, subscriberClient);
        await using var publisher = (IpcEventBus)await HostDrill.JoinAsync(BusKinds.Ipc, name, publisherClient);
        var subscriberStates = HostDrill.StatesOf(subscriber);
        var publisherStates = HostDrill.StatesOf(publisher);
        await using var subscription = await subscriber.SubscribeAsync("moved.>");
        Assert.That((await PublishUntilReceivedAsync(publisher, "moved.before", subscription))?.Topic, Is.EqualTo("moved.before"),
            "events flow before the host goes away");

        // The host's process "dies" (its socket closes, its registration stays); both participants notice.
        await first.Inner.DisposeAsync();
        var lost = await HostDrill.NextStateAsync(publisherStates, "the publisher's Disconnected notice after the host went away");
        Assert.That(lost.State, Is.EqualTo(BusConnectionState.Disconnected), lost.Detail);
        Assert.That(async () => await publisher.PublishAsync(OnexEvent.Create("moved.during", new byte[] { 1 })), Throws.InstanceOf<UnavailableException>(),
            "an event published while the host is away is refused, so the publisher knows it is lost");
        Assert.That((await HostDrill.NextStateAsync(subscriberStates, "the subscriber's Disconnected notice")).State, Is.EqualTo(BusConnectionState.Disconnected));

        // The node comes back (same id) with another root directory: the registration's endpoint changes (bus.updated).
        await using var secondClient = await registry.ConnectAsync(nodeId);
        await using var second = (RegisteredEventBus)await EventBusFactory.CreateAsync(HostOptions(name, secondClient, secondRoot));
        var newPath = ((IpcEventBus)second.Inner).SocketPath;
        Assert.That(newPath, Is.Not.EqualTo(oldPath), "the second host lives at another path");
        var record = (await subscriberClient.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = name }))
            .Buses!.Single(b => b.Name == name);
        Assert.That(record.Endpoints, Is.EqualTo(new[] { "unix://" + newPath }), "the registry lists the new path");

        var subscriberNotices = await UntilConnectedAtAsync(subscriberStates, newPath, "the subscriber");
        await UntilConnectedAtAsync(publisherStates, newPath, "the publisher");
        Assert.That(subscriberNotices.Select(n => (n.State, n.Detail)),
            Has.Some.Matches<(BusConnectionState State, string Detail)>(n => n.State == BusConnectionState.Disconnected && n.Detail.Contains($"moved from {oldPath} to {newPath}")),
            "the move is announced although the subscriber was already Disconnected");
        Assert.Multiple(() =>
        {
            Assert.That(subscriber.SocketPath, Is.EqualTo(newPath));
            Assert.That(publisher.SocketPath, Is.EqualTo(newPath));
        });

        // Connected means the connection is up; the re-sent subscriptions may still be on their way to the new host,
        // so each direction publishes until an event arrives, bounded.
        Assert.That((await PublishUntilReceivedAsync(publisher, "moved.after", subscription))?.Topic, Is.EqualTo("moved.after"),
            "a participant's event reaches the other participant through the new host");
        Assert.That((await PublishUntilReceivedAsync(second, "moved.down", subscription))?.Topic, Is.EqualTo("moved.down"),
            "the new host's event reaches the participant");
        await using var atHost = await second.SubscribeAsync("moved.>");
        Assert.That((await PublishUntilReceivedAsync(publisher, "moved.up", atHost))?.Topic, Is.EqualTo("moved.up"),
            "the participant's event reaches the new host");
    }

    private static EventBusOptions HostOptions(string name, RegistryClient client, IpcTestRoot root) =>
        EventBusOptions.Default with
        {
            Backend = BusKinds.Ipc, Name = name, Registry = client,
            Ipc = IpcEventBusOptions.Default with { RootDirectory = root.Path },
        };

    /// <summary>Reads connection notices until one says Connected at <paramref name="path"/>; returns all seen.</summary>
    internal static async Task<List<BusNotice>> UntilConnectedAtAsync(Channel<BusNotice> states, string path, string who)
    {
        var notices = new List<BusNotice>();
        using var wait = new CancellationTokenSource(NoticeLimit);
        try
        {
            BusNotice notice;
            do notices.Add(notice = await states.Reader.ReadAsync(wait.Token));
            while (!(notice.State == BusConnectionState.Connected && notice.Detail.Contains(path, StringComparison.Ordinal)));
            return notices;
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"{who}: no Connected notice naming {path}; saw: {string.Join(" | ", notices.Select(n => $"{n.State}: {n.Detail}"))}");
            throw;
        }
    }

    private static async Task<OnexEvent?> PublishUntilReceivedAsync(IEventBus publisher, string topic, IEventSubscription subscription)
    {
        for (var attempt = 1; attempt <= 50; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create(topic, BitConverter.GetBytes(attempt)));
            // Late copies of an earlier step's topic are skipped.
            while (await Onex.Tests.Zmq.ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(200)) is { } received)
                if (received.Topic == topic) return received;
        }
        return null;
    }
}
