using Onex.Bus;
using Onex.Tests.Zmq;
using Onex.Transports.Zmq;

namespace Onex.Tests.Conformance;

/// <summary>
/// The conformance suite against <see cref="ZmqEventBus"/> over tcp://: the first participant hosts the forwarder on
/// two leased loopback ports, a joined participant is a separate <see cref="ZmqEventBus"/> with its own sockets.
/// </summary>
[TestFixture]
public sealed class ZmqConformanceTests : EventBusConformanceTests
{
    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await ZmqTestBus.HostAsync(busName, ipc: false, cancellationToken);

    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await ZmqTestBus.JoinAsync((ZmqEventBus)first, $"participant-{Guid.NewGuid():N}", cancellationToken);
}

/// <summary>The conformance suite against <see cref="ZmqEventBus"/> over NetMQ's ipc:// (endpoint names under a temp dir).</summary>
[TestFixture]
public sealed class ZmqIpcConformanceTests : EventBusConformanceTests
{
    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await ZmqTestBus.HostAsync(busName, ipc: true, cancellationToken);

    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await ZmqTestBus.JoinAsync((ZmqEventBus)first, $"participant-{Guid.NewGuid():N}", cancellationToken);
}
