using Onex.Bus;
using Onex.Tests.Ipc;
using Onex.Transports.Ipc;

namespace Onex.Tests.Conformance;

/// <summary>
/// The conformance suite against <see cref="IpcEventBus"/>: the first participant hosts the bus (under a private root
/// directory for this fixture), every other participant joins by the host's <c>unix://</c> endpoint over a real
/// Unix domain socket.
/// </summary>
[TestFixture]
public sealed class IpcConformanceTests : NetworkedEventBusConformanceTests
{
    private IpcTestRoot? _root;

    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    // A joined participant reads its connection on one thread for all its subscriptions: a full Wait-mode one drops and counts.
    protected override bool WaitModeHoldsBackDelivery => false;

    [OneTimeSetUp]
    public void CreateRoot() => _root = new IpcTestRoot();

    [OneTimeTearDown]
    public void RemoveRoot() => _root?.Dispose();

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await IpcEventBus.HostAsync(
            IpcEventBusOptions.Default with { Name = busName, NodeId = "host", RootDirectory = _root!.Path },
            cancellationToken);

    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await IpcEventBus.JoinAsync(
            IpcEventBusOptions.Default with { SocketPath = ((IpcEventBus)first).Endpoint, NodeId = $"participant-{Guid.NewGuid():N}" },
            cancellationToken);

    protected override IReadOnlyList<string> JoinArguments(IEventBus first) =>
        ["--backend", "ipc", "--name", first.Name, "--endpoints", ((IpcEventBus)first).Endpoint];

    /// <summary>Stops the host (its socket file goes) and hosts the bus again at the same path.</summary>
    protected override async ValueTask<IEventBus> RestartPeerAsync(IEventBus first, CancellationToken cancellationToken)
    {
        await first.DisposeAsync();
        return Track(await CreateBusAsync(first.Name, cancellationToken));
    }
}
