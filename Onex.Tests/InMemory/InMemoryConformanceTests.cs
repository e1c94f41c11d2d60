using Onex.Bus;
using Onex.InMemory;
using Onex.Tests.Conformance;

namespace Onex.Tests.InMemory;

/// <summary>
/// The conformance suite against <see cref="InMemoryEventBus"/>. A joined participant is a separate
/// <see cref="InMemoryEventBus"/> from <see cref="InMemoryEventBus.Join"/> (shared routing, its own lifetime),
/// not the same instance.
/// </summary>
[TestFixture]
public sealed class InMemoryConformanceTests : EventBusConformanceTests
{
    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtMostOnceOrdered;

    protected override ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IEventBus>(new InMemoryEventBus(InMemoryEventBusOptions.Default with { Name = busName, NodeId = "first" }));

    protected override ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IEventBus>(((InMemoryEventBus)first).Join($"participant-{Guid.NewGuid():N}"));
}
