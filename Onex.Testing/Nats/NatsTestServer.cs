using System.Collections.Concurrent;
using NUnit.Framework;
using Onex.Testing.Registry;
using Onex.Testing.Resources;
using Onex.Transports.Registry;

namespace Onex.Testing.Nats;

/// <summary>
/// A real <c>nats-server</c> with JetStream for tests: loopback only, on a port leased from the test registry, with a
/// temporary store directory. <see cref="RestartAsync"/> stops it gracefully and starts it again on the same port
/// and store. Disposing kills it, deletes the directory and releases the port; the kit disposes it after the test
/// that started it (or at the end of the run, when started from <c>[OneTimeSetUp]</c>) if nobody did before.
/// </summary>
public sealed class NatsTestServer : IAsyncDisposable
{
    /// <summary>
    /// The payload limit written into the server config unless asked otherwise: 8 MB, because nats-server's own
    /// default (1 MB) is too small for 1 MiB events plus their envelope.
    /// </summary>
    public const int DefaultMaxPayloadBytes = 8 * 1024 * 1024;

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);
    private static readonly ConcurrentDictionary<NatsTestServer, byte> Running = new();

    private readonly string _executable;
    private readonly string _root;
    private readonly string _configFile;
    private readonly PortLeaseSet _lease;
    private NatsServerProcess? _process;
    private int _disposed;

    static NatsTestServer()
    {
        // A crashed or aborted test run must not leave servers behind.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var server in Running.Keys) server.KillNow();
        };
    }

    private NatsTestServer(string executable, PortLeaseSet lease, int maxPayloadBytes, string? configuration = null)
    {
        _executable = executable;
        _lease = lease;
        Port = lease.Ports[0];
        _root = Directory.CreateTempSubdirectory("onex-nats-").FullName;
        StoreDirectory = Path.Combine(_root, "store");
        Directory.CreateDirectory(StoreDirectory);
        _configFile = Path.Combine(_root, "nats.conf");
        File.WriteAllText(_configFile, $"max_payload: {maxPayloadBytes}\n{configuration}\n");
    }

    /// <summary>The client port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The URL to connect to.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>JetStream's store directory (kept across <see cref="RestartAsync"/>).</summary>
    public string StoreDirectory { get; }

    /// <summary>True while the server process runs.</summary>
    public bool IsRunning => _process is { IsRunning: true };

    /// <summary>
    /// Starts a server on a leased port and returns once it accepts connections with JetStream ready. It is disposed
    /// after the running test (or the run) unless disposed earlier.
    /// </summary>
    /// <param name="maxPayloadBytes">The server's <c>max_payload</c>.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="Onex.Errors.NotFoundException">nats-server is not installed (the message says how to install it).</exception>
    /// <exception cref="Onex.Errors.UnavailableException">nats-server did not start (the message carries its output).</exception>
    public static async Task<NatsTestServer> StartAsync(int maxPayloadBytes = DefaultMaxPayloadBytes, CancellationToken cancellationToken = default)
    {
        var (scope, purpose) = TestResources.Current();
        var server = await StartUntrackedAsync(maxPayloadBytes, $"nats-server for {purpose}", cancellationToken).ConfigureAwait(false);
        return await TestResources.AddAsync(scope, server).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts a server as <see cref="StartAsync(int, CancellationToken)"/> does, with <paramref name="configuration"/>
    /// added to its config file (nats-server syntax), e.g. <c>authorization { user: u, password: p }</c>. Such a server
    /// is still probed for readiness without credentials: nats-server sends its INFO line before any authentication.
    /// </summary>
    public static async Task<NatsTestServer> StartWithConfigurationAsync(string configuration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var (scope, purpose) = TestResources.Current();
        var executable = FindExecutable();
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        var lease = await registry.LeasePortAsync(new LeaseRequestOptions { Purpose = $"nats-server for {purpose}", Protocol = Onex.Protocol.PortProtocols.Tcp }, cancellationToken)
            .ConfigureAwait(false);
        var server = new NatsTestServer(executable, lease, DefaultMaxPayloadBytes, configuration);
        try
        {
            await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return await TestResources.AddAsync(scope, server).ConfigureAwait(false);
    }

    /// <summary>Starts a server that no test scope owns (the process-wide one of <see cref="OnexTestEnvironment"/>).</summary>
    internal static async Task<NatsTestServer> StartUntrackedAsync(int maxPayloadBytes, string purpose, CancellationToken cancellationToken)
    {
        var executable = FindExecutable();
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        var lease = await registry.LeasePortAsync(new LeaseRequestOptions { Purpose = purpose, Protocol = Onex.Protocol.PortProtocols.Tcp }, cancellationToken)
            .ConfigureAwait(false);
        var server = new NatsTestServer(executable, lease, maxPayloadBytes);
        try
        {
            await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit; the store and the port are kept.</summary>
    public async Task StopAsync()
    {
        if (_process is { } process) await process.StopAsync(StopTimeout).ConfigureAwait(false);
        Running.TryRemove(this, out _);
    }

    /// <summary>Freezes the server (SIGSTOP, by pid): connections stay open, nothing is answered. Disposing kills it paused or not.</summary>
    /// <exception cref="InvalidOperationException">The server is not running, or did not stop (see <see cref="NatsServerProcess.Pause"/>).</exception>
    public void Pause() => (_process ?? throw new InvalidOperationException($"{this} is not running: nothing to pause.")).Pause();

    /// <summary>True while the server process is stopped by <see cref="Pause"/> (as the kernel shows it).</summary>
    public bool IsPaused => _process is { IsPaused: true };

    /// <summary>Lets a paused server run again (SIGCONT).</summary>
    public void Resume() => _process?.Resume();

    /// <summary>Kills the server (SIGKILL, as <c>kill -9</c>) and waits for it to exit; the store and the port are kept.</summary>
    public async Task KillAsync()
    {
        if (_process is { } process) await process.KillAsync().ConfigureAwait(false);
        Running.TryRemove(this, out _);
    }

    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts the server again after <see cref="StopAsync"/> (same port and store).</summary>
    public Task StartAgainAsync(CancellationToken cancellationToken = default) => StartProcessAsync(cancellationToken);

    /// <summary>Kills the server, deletes its directory and releases its port.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_process is { } process) await process.DisposeAsync().ConfigureAwait(false);
        Running.TryRemove(this, out _);
        await _lease.DisposeAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException ex)
        {
            TestContext.Progress.WriteLine($"onex-testing: could not delete the nats-server directory {_root}: {ex.Message}");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"nats-server {Url}";

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_process is { } previous) await previous.DisposeAsync().ConfigureAwait(false);
        _process = await NatsServerProcess.StartAsync(_executable, Port, StoreDirectory, _configFile, cancellationToken).ConfigureAwait(false);
        Running.TryAdd(this, 0);
    }

    private void KillNow() => _process?.KillNow();

    private static string FindExecutable() => NatsServerProcess.FindExecutable("or set ONEX_NATS_URL to a running server");
}
