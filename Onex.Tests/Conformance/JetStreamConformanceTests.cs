using Onex.Bus;
using Onex.Tests.Infrastructure;
using Onex.Tests.JetStream;
using Onex.Transports.JetStream;

namespace Onex.Tests.Conformance;

/// <summary>
/// The conformance suite against <see cref="JetStreamEventBus"/> on a real nats-server. Each test gets a fresh
/// stream (a unique bus name); a joined participant is a second connection to the same stream. The backend states
/// <see cref="DeliveryGuarantee.AtLeastOnce"/>; drop modes are exact locally (a dropped event comes back only after
/// AckWait, longer than any test here).
/// </summary>
[TestFixture]
public sealed class JetStreamConformanceTests : NetworkedEventBusConformanceTests
{
    private NatsServerFixture _server = null!;

    [OneTimeSetUp]
    public async Task StartServerAsync() => _server = await NatsServerFixture.StartAsync();

    [OneTimeTearDown]
    public async Task StopServerAsync() => await _server.DisposeAsync();

    protected override DeliveryGuarantee ExpectedGuarantee => DeliveryGuarantee.AtLeastOnce;

    protected override async ValueTask<IEventBus> CreateBusAsync(string busName, CancellationToken cancellationToken) =>
        await JetStreamEventBus.ConnectAsync(JetStreamTesting.Options(_server, busName) with { NodeId = "first" }, cancellationToken);

    // The joined participant leaves the stream alone on dispose; the first one deletes it.
    protected override async ValueTask<IEventBus> JoinBusAsync(IEventBus first, CancellationToken cancellationToken) =>
        await JetStreamEventBus.ConnectAsync(
            ((JetStreamEventBus)first).Options with { NodeId = $"participant-{Guid.NewGuid():N}", DeleteStreamOnDispose = false },
            cancellationToken);

    protected override IReadOnlyList<string> JoinArguments(IEventBus first) =>
        ["--backend", "jetstream", "--name", first.Name, "--endpoints", _server.Url];

    /// <summary>Restarts nats-server on the same port and store; both participants reconnect by themselves.</summary>
    protected override async ValueTask<IEventBus> RestartPeerAsync(IEventBus first, CancellationToken cancellationToken)
    {
        await _server.RestartAsync(cancellationToken);
        return first;
    }
}
