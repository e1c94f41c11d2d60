using Onex.Testing.Nats;

namespace Onex.Tests.Infrastructure;

/// <summary>
/// A real <c>nats-server</c> with JetStream for tests (<see cref="NatsTestServer"/> of the test kit): loopback only, on
/// a leased port, with a temporary store directory and <c>max_payload: 8MB</c>. <see cref="RestartAsync"/> stops it
/// gracefully and starts it again on the same port and store. Disposing kills it, deletes the directory and releases
/// the port. A test fixture starts one in <c>[OneTimeSetUp]</c> and uses a fresh stream per test.
/// </summary>
public sealed class NatsServerFixture : IAsyncDisposable
{
    /// <summary>The payload limit written into the server config unless a test asks for another.</summary>
    public const int DefaultMaxPayloadBytes = NatsTestServer.DefaultMaxPayloadBytes;

    private readonly NatsTestServer _server;

    private NatsServerFixture(NatsTestServer server) => _server = server;

    /// <summary>The client port on 127.0.0.1.</summary>
    public int Port => _server.Port;

    /// <summary>The URL to connect to.</summary>
    public string Url => _server.Url;

    /// <summary>JetStream's store directory (kept across <see cref="RestartAsync"/>).</summary>
    public string StoreDirectory => _server.StoreDirectory;

    /// <summary>True while the server process runs.</summary>
    public bool IsRunning => _server.IsRunning;

    /// <summary>Starts a server and returns once it accepts connections with JetStream ready.</summary>
    public static async Task<NatsServerFixture> StartAsync(int maxPayloadBytes = DefaultMaxPayloadBytes, CancellationToken cancellationToken = default) =>
        new(await NatsTestServer.StartAsync(maxPayloadBytes, cancellationToken));

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit; the store is kept.</summary>
    public Task StopAsync() => _server.StopAsync();

    /// <summary>Stops the server and starts it again on the same port and store directory.</summary>
    public Task RestartAsync(CancellationToken cancellationToken = default) => _server.RestartAsync(cancellationToken);

    /// <summary>Kills the server (SIGKILL) and waits for it to exit; store and port are kept.</summary>
    public Task KillAsync() => _server.KillAsync();

    /// <summary>Starts the server again after <see cref="StopAsync"/> (same port and store).</summary>
    public Task StartAgainAsync(CancellationToken cancellationToken = default) => _server.StartAgainAsync(cancellationToken);

    /// <summary>Kills the server, deletes its directory and releases its port.</summary>
    public ValueTask DisposeAsync() => _server.DisposeAsync();

    /// <inheritdoc/>
    public override string ToString() => _server.ToString();
}
