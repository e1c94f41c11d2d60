using System.Runtime.Versioning;
using Onex.Bus;
using Onex.Tests.Ipc;
using Onex.Tests.Zmq;
using Onex.Transports.Ipc;

namespace Onex.Tests.Buses;

/// <summary>
/// A bus that moves while a joined participant is already Disconnected (it lost the old host first) is still announced:
/// a ConnectionChanged notice saying where the bus moved (state Disconnected), then Connected at the new endpoint once
/// the participant rejoined there. Before, the move's notice was swallowed because the state did not change.
/// </summary>
[SupportedOSPlatform("linux")]
public class MoveNoticeTests
{
    [Test]
    public async Task Zmq_move_while_disconnected_is_announced_then_connected_at_the_new_endpoint()
    {
        var first = await ZmqTestBus.HostAsync("move-notice", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(first, "joined");
        var states = HostDrill.StatesOf(joined);
        var oldEndpoint = joined.SubscribeEndpoint;
        await first.DisposeAsync();
        var lost = await HostDrill.NextStateAsync(states, "Disconnected once the old host is gone");
        Assert.That(lost.State, Is.EqualTo(BusConnectionState.Disconnected), lost.Detail);

        await using var second = await ZmqTestBus.HostAsync("move-notice", ipc: false);
        await joined.MoveToAsync(second.PublishEndpoint, second.SubscribeEndpoint, null, CancellationToken.None);

        var moved = await HostDrill.NextStateAsync(states, "the move's notice");
        var back = await HostDrill.NextStateAsync(states, "Connected at the new endpoint");
        Assert.Multiple(() =>
        {
            Assert.That(moved.State, Is.EqualTo(BusConnectionState.Disconnected), moved.Detail);
            Assert.That(moved.Detail, Does.Contain($"moved from {oldEndpoint} to {second.SubscribeEndpoint}"), "the notice says where the bus went");
            Assert.That(back.State, Is.EqualTo(BusConnectionState.Connected), back.Detail);
            Assert.That(back.Detail, Does.Contain(second.SubscribeEndpoint), "connected at the new endpoint");
        });
    }

    [Test]
    public async Task Ipc_move_while_disconnected_is_announced_then_connected_at_the_new_path()
    {
        using var firstRoot = new IpcTestRoot();
        using var secondRoot = new IpcTestRoot();
        var first = await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = "move-notice", RootDirectory = firstRoot.Path });
        await using var joined = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = first.Endpoint });
        var states = HostDrill.StatesOf(joined);
        var oldPath = joined.SocketPath;
        await first.DisposeAsync();
        var lost = await HostDrill.NextStateAsync(states, "Disconnected once the old host is gone");
        Assert.That(lost.State, Is.EqualTo(BusConnectionState.Disconnected), lost.Detail);

        await using var second = await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = "move-notice", RootDirectory = secondRoot.Path });
        await joined.MoveToAsync(second.Endpoint, CancellationToken.None);

        var moved = await HostDrill.NextStateAsync(states, "the move's notice");
        var back = await HostDrill.NextStateAsync(states, "Connected at the new path");
        Assert.Multiple(() =>
        {
            Assert.That(moved.State, Is.EqualTo(BusConnectionState.Disconnected), moved.Detail);
            Assert.That(moved.Detail, Does.Contain($"moved from {oldPath} to {second.SocketPath}"), "the notice says where the bus went");
            Assert.That(back.State, Is.EqualTo(BusConnectionState.Connected), back.Detail);
            Assert.That(back.Detail, Does.Contain(second.SocketPath), "connected at the new path");
            Assert.That(joined.SocketPath, Is.EqualTo(second.SocketPath));
        });
    }
}
