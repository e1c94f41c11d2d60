using Onex.Errors;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.Testing.Nats;
using Onex.Transports.Registry;

namespace Onex.Testing.Registry;

/// <summary>
/// The registry every test of this process leases from, and the one client that talks to it.
/// <para>
/// When <c>ONEX_REGISTRY_ENDPOINT</c> (and <c>ONEX_REGISTRY_PUB_ENDPOINT</c>) are set, that shared registry is used,
/// so every test process of a CI job coordinates through it. Otherwise a registry node is started in this process on
/// OS-chosen loopback ports, lazily on first use, once. Both are torn down at the end of the NUnit run (with
/// <c>[assembly: OnexTestResources]</c>) or when the process exits. Thread-safe.
/// </para>
/// </summary>
public static class OnexTestEnvironment
{
    /// <summary>Environment variable naming a NATS server (with JetStream) for jetstream buses, instead of one the kit starts.</summary>
    public const string NatsUrlVariable = "ONEX_NATS_URL";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly SemaphoreSlim NatsGate = new(1, 1);
    private static NatsTestServer? _nats;
    private static OnexTestEnvironmentOptions _options = OnexTestEnvironmentOptions.Default;
    private static TestRegistryConnection? _connection;
    private static bool _configurationLocked;
    private static int _exitHookInstalled;

    /// <summary>The pool of the in-process registry (and of the shared one <c>scripts/test.sh</c> starts): 20000-24999.</summary>
    public static PortRange DefaultPortRange => new(20000, 24999);

    /// <summary>
    /// Ports for registries that tests start themselves (restart tests, CLI tests): 25000-29999. The kit's registry
    /// never leases from it, so a private registry's grants cannot collide with the kit's; each such registry takes a
    /// block of it of its own with <see cref="OnexTest.ReservePortRangeAsync"/>.
    /// </summary>
    public static PortRange PrivatePortRange => new(25000, 29999);

    /// <summary>True when <c>ONEX_REGISTRY_ENDPOINT</c> names a shared registry for this process to use.</summary>
    public static bool UsesSharedRegistry =>
        !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(RegistryEndpoints.RouterVariable));

    /// <summary>The options in force.</summary>
    public static OnexTestEnvironmentOptions Options => Volatile.Read(ref _options);

    /// <summary>
    /// Replaces the options. Only before the registry is first used (say, in an assembly-level
    /// <c>[OneTimeSetUp]</c>); afterwards it throws <see cref="InvalidOperationException"/>.
    /// </summary>
    public static void Configure(OnexTestEnvironmentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Gate.Wait();
        try
        {
            if (_configurationLocked)
                throw new InvalidOperationException("OnexTestEnvironment.Configure must be called before the registry is first used.");
            Volatile.Write(ref _options, options);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>
    /// The process-wide registry client, connected (and its node announced) on first use: to the shared registry when
    /// <c>ONEX_REGISTRY_ENDPOINT</c> is set, else to a registry node started in this process. Do not dispose it.
    /// </summary>
    /// <exception cref="UnavailableException">The shared registry does not answer (the message names the variable and endpoint).</exception>
    /// <exception cref="InvalidOperationException"><c>ONEX_REGISTRY_ENDPOINT</c> is set without <c>ONEX_REGISTRY_PUB_ENDPOINT</c>.</exception>
    public static async ValueTask<RegistryClient> RegistryAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _connection) is { } ready) return ready.Client;
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connection is { } raced) return raced.Client;
            _configurationLocked = true;
            InstallExitHook();
            var connection = await TestRegistryConnection.OpenAsync(
                _options, Resources.TestResources.RunName, Environment.GetEnvironmentVariable, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _connection, connection);
            return connection.Client;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>
    /// The NATS server jetstream test buses use: <c>ONEX_NATS_URL</c> when set, else a <c>nats-server</c> (JetStream,
    /// loopback, leased port, temporary store) started in the background on first use, once per process, and stopped
    /// at the end of the run.
    /// </summary>
    /// <exception cref="Onex.Errors.NotFoundException">nats-server is not installed (the message says how to install it).</exception>
    /// <exception cref="Onex.Errors.UnavailableException">nats-server did not start (the message carries its output).</exception>
    public static async ValueTask<string> NatsUrlAsync(CancellationToken cancellationToken = default)
    {
        if (Environment.GetEnvironmentVariable(NatsUrlVariable) is { Length: > 0 } configured) return configured.Trim();
        if (Volatile.Read(ref _nats) is { } running) return running.Url;
        await NatsGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_nats is { } raced) return raced.Url;
            var server = await NatsTestServer.StartUntrackedAsync(
                NatsTestServer.DefaultMaxPayloadBytes, $"nats-server of {Resources.TestResources.RunName}", cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _nats, server);
            return server.Url;
        }
        finally
        {
            NatsGate.Release();
        }
    }

    /// <summary>
    /// Disconnects (the node departs, so the registry drops whatever it still holds) and stops the in-process registry.
    /// Stops the kit's nats-server first. The next <see cref="RegistryAsync"/> starts afresh. Called at the end of the NUnit run; harmless when nothing runs.
    /// </summary>
    public static async ValueTask ShutdownAsync()
    {
        await NatsGate.WaitAsync().ConfigureAwait(false);
        try
        {
            var nats = _nats;
            Volatile.Write(ref _nats, null);
            if (nats is not null) await nats.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            NatsGate.Release();
        }
        await Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            var connection = _connection;
            Volatile.Write(ref _connection, null);
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static void InstallExitHook()
    {
        if (Interlocked.Exchange(ref _exitHookInstalled, 1) != 0) return;
        // A run without the assembly attribute (or one torn down abruptly) still leaves nothing behind: the node departs
        // and the in-process registry stops when the process exits, within a bound so exit is never held up for long.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            var connection = Volatile.Read(ref _connection);
            if (connection is null) return;
            if (!Task.Run(() => connection.DisposeAsync().AsTask()).Wait(TimeSpan.FromSeconds(5)))
                Console.Error.WriteLine("onex-testing: the test registry did not shut down within 5 s at process exit.");
        };
    }
}

/// <summary>A connected client and, when no shared registry is configured, the registry node it talks to.</summary>
internal sealed class TestRegistryConnection : IAsyncDisposable
{
    private readonly RegistryNodeHost? _host;
    private int _disposed;

    private TestRegistryConnection(RegistryClient client, RegistryNodeHost? host)
    {
        Client = client;
        _host = host;
    }

    public RegistryClient Client { get; }

    /// <summary>The registry node in this process; null with a shared registry.</summary>
    public RegistryNodeHost? Host => _host;

    /// <summary>Connects to the shared registry <paramref name="environment"/> names, or starts one in this process.</summary>
    public static async Task<TestRegistryConnection> OpenAsync(
        OnexTestEnvironmentOptions options, string runName, Func<string, string?> environment, CancellationToken cancellationToken)
    {
        var router = environment(RegistryEndpoints.RouterVariable);
        if (!string.IsNullOrWhiteSpace(router))
        {
            var client = await ConnectSharedAsync(options, runName, router.Trim(), environment(RegistryEndpoints.PubVariable), cancellationToken)
                .ConfigureAwait(false);
            return new TestRegistryConnection(client, null);
        }

        var host = await RegistryNodeHost.StartAsync(RegistryOptions(options), ct: cancellationToken).ConfigureAwait(false);
        try
        {
            var client = await RegistryClient.ConnectAsync(ClientOptions(options, runName, host.RouterEndpoint, host.PubEndpoint), cancellationToken)
                .ConfigureAwait(false);
            return new TestRegistryConnection(client, host);
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The in-process registry: loopback, OS-chosen endpoints, a window of the kit's port range.</summary>
    internal static RegistryNodeOptions RegistryOptions(OnexTestEnvironmentOptions options)
    {
        var range = options.PortRange;
        if (options.PoolWindow is { } window && window > 0 && window < range.Count)
        {
            var first = range.First + Random.Shared.Next(range.Count - window + 1);
            range = new PortRange(first, first + window - 1);
        }
        return RegistryNodeOptions.Default with
        {
            Endpoint = "tcp://127.0.0.1:0",
            PubEndpoint = "tcp://127.0.0.1:0",
            NodeId = $"onex-testing-registry-{Environment.ProcessId}",
            // A registry for one test run: nothing to keep.
            Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
            Leases = LeaseOptions.Default with { PortRange = range },
        };
    }

    private static async Task<RegistryClient> ConnectSharedAsync(
        OnexTestEnvironmentOptions options, string runName, string router, string? pub, CancellationToken cancellationToken)
    {
        // Without the broadcast endpoint the client would listen to the default one, maybe another registry's, and
        // take its heartbeats for a restart of ours.
        if (string.IsNullOrWhiteSpace(pub))
            throw new InvalidOperationException(
                $"{RegistryEndpoints.RouterVariable} is set ({router}) but {RegistryEndpoints.PubVariable} is not; a shared test registry needs both " +
                "(scripts/test.sh exports both).");
        try
        {
            return await RegistryClient.ConnectAsync(ClientOptions(options, runName, router, pub.Trim()), cancellationToken).ConfigureAwait(false);
        }
        catch (UnavailableException ex)
        {
            throw new UnavailableException(
                $"{RegistryEndpoints.RouterVariable} names a shared test registry at {router}, but it does not answer: {ex.Message}. " +
                $"Start it (see docs/TESTING.md) or unset {RegistryEndpoints.RouterVariable} to let each test process run its own.",
                ex.Details, ex);
        }
    }

    private static RegistryClientOptions ClientOptions(OnexTestEnvironmentOptions options, string runName, string router, string pub) => new()
    {
        Endpoint = router,
        PubEndpoint = pub,
        NodeName = $"onex-testing {runName}",
        NodeMetadata = new Dictionary<string, string> { ["role"] = "test-process", ["processId"] = Environment.ProcessId.ToString() },
        RequestTimeout = options.RequestTimeout,
    };

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await Client.DisposeAsync().ConfigureAwait(false);
        if (_host is not null) await _host.DisposeAsync().ConfigureAwait(false);
    }
}
