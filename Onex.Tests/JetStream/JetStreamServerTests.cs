using NATS.Client.Core;
using NATS.Client.JetStream;
using Onex.Tests.Infrastructure;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>A fixture with its own nats-server and a raw NATS.Net connection to inspect what the bus did.</summary>
public abstract class JetStreamServerTests
{
    protected NatsServerFixture Server { get; private set; } = null!;
    protected NatsConnection Raw { get; private set; } = null!;
    protected NatsJSContext Js { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartServerAsync()
    {
        Server = await NatsServerFixture.StartAsync();
        (Raw, Js) = await ConnectRawAsync(Server);
    }

    [OneTimeTearDown]
    public async Task StopServerAsync()
    {
        await Raw.DisposeAsync();
        await Server.DisposeAsync();
    }
}
