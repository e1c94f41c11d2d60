using Onex.Bus;
using Onex.Tests.Zmq;
using Onex.Transports.Zmq;

namespace Onex.Tests.Conformance;

/// <summary>
/// The conformance suite against <see cref="ZmqEventBus"/> over tcp://: the first participant hosts the forwarder on
/// two leased loopback ports, a joined participant is a separate <see cref="ZmqEventBus"/> with its own sockets.
/// </summary>
[TestFixture]
public sealed class ZmqConformanceTests : NetworkedEventBusConformanceTests
{
    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    protected override bool WaitModeHoldsBackDelivery => false;

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await ZmqTestBus.HostAsync(busName, ipc: false, cancellationToken);

    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await ZmqTestBus.JoinAsync((ZmqEventBus)first, $"participant-{Guid.NewGuid():N}", cancellationToken);

    protected override IReadOnlyList<string> JoinArguments(IEventBus first) => ZmqConformance.JoinArguments(first);

    protected override ValueTask<IEventBus> RestartPeerAsync(IEventBus first, CancellationToken cancellationToken) =>
        ZmqConformance.RestartHostAsync(first, Track, cancellationToken);
}

/// <summary>The conformance suite against <see cref="ZmqEventBus"/> over NetMQ's ipc:// (endpoint names under a temp dir).</summary>
[TestFixture]
public sealed class ZmqIpcConformanceTests : NetworkedEventBusConformanceTests
{
    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    protected override bool WaitModeHoldsBackDelivery => false;

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await ZmqTestBus.HostAsync(busName, ipc: true, cancellationToken);

    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await ZmqTestBus.JoinAsync((ZmqEventBus)first, $"participant-{Guid.NewGuid():N}", cancellationToken);

    protected override IReadOnlyList<string> JoinArguments(IEventBus first) => ZmqConformance.JoinArguments(first);

    protected override ValueTask<IEventBus> RestartPeerAsync(IEventBus first, CancellationToken cancellationToken) =>
        ZmqConformance.RestartHostAsync(first, Track, cancellationToken);
}

/// <summary>What the two ZeroMQ fixtures share for the cross-process and restart cases.</summary>
internal static class ZmqConformance
{
    public static IReadOnlyList<string> JoinArguments(IEventBus first)
    {
        var host = (ZmqEventBus)first;
        return ["--backend", "zmq", "--name", host.Name, "--endpoints", $"{host.PublishEndpoint},{host.SubscribeEndpoint}"];
    }

    /// <summary>Stops the hosting participant (and its forwarder) and hosts the bus again on the same endpoints.</summary>
    public static async ValueTask<IEventBus> RestartHostAsync(IEventBus first, Func<ZmqEventBus, ZmqEventBus> track, CancellationToken cancellationToken)
    {
        var host = (ZmqEventBus)first;
        await host.DisposeAsync();
        return track(await ZmqEventBus.HostAsync(host.Options, cancellationToken));
    }
}
