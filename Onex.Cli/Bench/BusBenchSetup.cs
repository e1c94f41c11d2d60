using Onex.Bus;
using Onex.InMemory;
using Onex.Protocol;
using Onex.Transports.Buses;
using Onex.Transports.Ipc;
using Onex.Transports.JetStream;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Cli.Bench;

/// <summary>
/// Everything one bench run compares, created once: the bus under test (through <see cref="EventBusFactory"/>), the
/// raw baseline of its transport, extra round-trip comparisons, and the infrastructure they need (a temporary
/// directory for Unix sockets, a private nats-server). Disposing tears it all down, last created first.
/// </summary>
/// <remarks>
/// Topology, the same for every backend: the publishing (and pinging) participant hosts the bus; the subscribing (and
/// answering) participant joins it. ZeroMQ: the forwarder's thread sends the host's events straight on its XPUB over
/// tcp loopback to the joined participant's SUB, so one tcp hop each way, like the raw pair; the ZeroMQ run also
/// measures, in the same rounds, the throughput between two joined participants (PUB to the forwarder's XSUB, XPUB to
/// SUB: two tcp hops), the path every participant but the host takes. Unix sockets: host's
/// broker to the joined participant's connection, one socket hop each way, like the raw pair. JetStream: two
/// connections to one server, like the raw baseline's two.
/// </remarks>
internal sealed class BusBenchSetup : IAsyncDisposable
{
    private const string BusName = "bench";
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<string> _directories = [];
    private readonly List<(string Name, IBenchContender Contender)> _roundTripComparisons = [];
    private readonly List<(string Name, IBenchContender Contender)> _throughputComparisons = [];

    private BusBenchSetup()
    {
    }

    /// <summary>The bus under test.</summary>
    public IBenchContender Bus { get; private set; } = null!;

    /// <summary>The raw transport the bus runs on.</summary>
    public IBenchContender Raw { get; private set; } = null!;

    /// <summary>Further round trips measured in the same rounds, by name (the Unix-socket run adds the ZeroMQ bus).</summary>
    public IReadOnlyList<(string Name, IBenchContender Contender)> RoundTripComparisons => _roundTripComparisons;

    /// <summary>Further throughputs measured in the same rounds, by name (the ZeroMQ run adds joined to joined).</summary>
    public IReadOnlyList<(string Name, IBenchContender Contender)> ThroughputComparisons => _throughputComparisons;

    /// <summary>The NATS server used (jetstream only).</summary>
    public string? NatsUrl { get; private set; }

    /// <summary>How the NATS server came about (jetstream only).</summary>
    public string? NatsServerSource { get; private set; }

    /// <summary>Creates the contenders of <see cref="BusBenchOptions.Backend"/>.</summary>
    /// <param name="options">What to measure.</param>
    /// <param name="registry">The registry to lease a port from when a nats-server must be started; null starts one in-process.</param>
    /// <param name="diagnostics">Where to report clean-up problems.</param>
    /// <param name="cancellationToken">Cancels the set-up.</param>
    public static async Task<BusBenchSetup> CreateAsync(
        BusBenchOptions options, RegistryClientOptions? registry, TextWriter diagnostics, CancellationToken cancellationToken)
    {
        var setup = new BusBenchSetup();
        try
        {
            var payload = BenchLoops.Payload(options.PayloadBytes);
            switch (options.Backend)
            {
                case BusKinds.Memory:
                    setup.Bus = await CreateMemoryBusAsync(payload, options, cancellationToken).ConfigureAwait(false);
                    setup.Raw = new RawChannelContender(payload, SubscriptionOptions.Default.Capacity);
                    break;
                case BusKinds.Zmq:
                    setup.Bus = await CreateZmqBusAsync(payload, options, cancellationToken).ConfigureAwait(false);
                    setup.Raw = await RawNetMqContender.CreateAsync(payload, options.ZmqHighWatermark, options.QuietPeriod, cancellationToken).ConfigureAwait(false);
                    setup._throughputComparisons.Add(("joined->joined", await CreateZmqJoinedPairAsync(payload, options, cancellationToken).ConfigureAwait(false)));
                    break;
                case BusKinds.Ipc:
                    var root = setup.TemporaryDirectory();
                    setup.Bus = await CreateIpcBusAsync(root, payload, options, cancellationToken).ConfigureAwait(false);
                    setup.Raw = await RawUnixSocketContender.CreateAsync(root, payload, cancellationToken).ConfigureAwait(false);
                    setup._roundTripComparisons.Add(("zmq bus", await CreateZmqBusAsync(payload, options, cancellationToken).ConfigureAwait(false)));
                    break;
                case BusKinds.JetStream:
                    var url = await setup.NatsServerAsync(options, registry, diagnostics, cancellationToken).ConfigureAwait(false);
                    setup.Bus = await CreateJetStreamBusAsync(url, payload, options, cancellationToken).ConfigureAwait(false);
                    setup.Raw = await RawJetStreamContender.CreateAsync(url, payload, options.InFlight, options.QuietPeriod, cancellationToken)
                        .ConfigureAwait(false);
                    break;
                default:
                    throw new ArgumentException($"Unknown backend '{options.Backend}': use one of {string.Join(", ", EventBusFactory.Backends)}.");
            }
            return setup;
        }
        catch
        {
            await setup.DisposeAsync(diagnostics).ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask DisposeAsync() => DisposeAsync(TextWriter.Null);

    /// <summary>Disposes contenders first, then the infrastructure; reports directories it could not delete.</summary>
    public async ValueTask DisposeAsync(TextWriter diagnostics)
    {
        foreach (var (_, contender) in _roundTripComparisons.Concat(_throughputComparisons)) await contender.DisposeAsync().ConfigureAwait(false);
        if (Raw is not null) await Raw.DisposeAsync().ConfigureAwait(false);
        if (Bus is not null) await Bus.DisposeAsync().ConfigureAwait(false);
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync().ConfigureAwait(false);
        foreach (var directory in _directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await diagnostics.WriteLineAsync($"onex: could not delete {directory}: {ex.Message}").ConfigureAwait(false);
            }
        }
    }

    private static async Task<IBenchContender> CreateMemoryBusAsync(byte[] payload, BusBenchOptions options, CancellationToken cancellationToken)
    {
        var host = (InMemoryEventBus)await EventBusFactory.CreateAsync(
            new EventBusOptions { Backend = BusKinds.Memory, Name = BusName, NodeId = "bench-publisher" }, cancellationToken).ConfigureAwait(false);
        var joined = host.Join("bench-subscriber");
        return new BusContender("InMemoryEventBus, two participants of one bus", host, joined, payload, 1, options.QuietPeriod,
            () => DisposeBothAsync(joined, host));
    }

    private static async Task<IBenchContender> CreateZmqBusAsync(byte[] payload, BusBenchOptions options, CancellationToken cancellationToken)
    {
        var zmq = ZmqOptions(options);
        var host = await HostZmqBusAsync(zmq, cancellationToken).ConfigureAwait(false);
        try
        {
            var joined = await JoinZmqBusAsync(host, "bench-joined", zmq, cancellationToken).ConfigureAwait(false);
            return new BusContender("ZmqEventBus, host (forwarder) -> joined participant, tcp loopback", host, joined, payload, 1,
                options.QuietPeriod, () => DisposeBothAsync(joined, host), queueWholeRun: true);
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Two participants that both joined a bus hosted by a third: each event crosses two tcp hops.</summary>
    private static async Task<IBenchContender> CreateZmqJoinedPairAsync(byte[] payload, BusBenchOptions options, CancellationToken cancellationToken)
    {
        var zmq = ZmqOptions(options);
        var host = await HostZmqBusAsync(zmq, cancellationToken).ConfigureAwait(false);
        IEventBus? publisher = null;
        try
        {
            publisher = await JoinZmqBusAsync(host, "bench-joined-publisher", zmq, cancellationToken).ConfigureAwait(false);
            var subscriber = await JoinZmqBusAsync(host, "bench-joined-subscriber", zmq, cancellationToken).ConfigureAwait(false);
            return new BusContender("ZmqEventBus, joined participant -> forwarder -> joined participant, tcp loopback", publisher, subscriber, payload, 1,
                options.QuietPeriod, async () =>
                {
                    await DisposeBothAsync(subscriber, publisher).ConfigureAwait(false);
                    await host.DisposeAsync().ConfigureAwait(false);
                }, queueWholeRun: true);
        }
        catch
        {
            if (publisher is not null) await publisher.DisposeAsync().ConfigureAwait(false);
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static ZmqEventBusOptions ZmqOptions(BusBenchOptions options) => ZmqEventBusOptions.Default with
    {
        Socket = ZmqSocketOptions.Default with { SendHighWatermark = options.ZmqHighWatermark, ReceiveHighWatermark = options.ZmqHighWatermark },
    };

    private static async Task<ZmqEventBus> HostZmqBusAsync(ZmqEventBusOptions zmq, CancellationToken cancellationToken) =>
        (ZmqEventBus)await EventBusFactory.CreateAsync(
            new EventBusOptions { Backend = BusKinds.Zmq, Name = BusName, NodeId = "bench-host", Zmq = zmq }, cancellationToken).ConfigureAwait(false);

    private static Task<IEventBus> JoinZmqBusAsync(ZmqEventBus host, string nodeId, ZmqEventBusOptions zmq, CancellationToken cancellationToken) =>
        EventBusFactory.CreateAsync(new EventBusOptions
        {
            Backend = BusKinds.Zmq, Name = BusName, NodeId = nodeId, Role = EventBusRole.Join,
            Endpoints = [host.PublishEndpoint, host.SubscribeEndpoint], Zmq = zmq,
        }, cancellationToken).AsTask();

    private static async Task<IBenchContender> CreateIpcBusAsync(string root, byte[] payload, BusBenchOptions options, CancellationToken cancellationToken)
    {
        var host = (IpcEventBus)await EventBusFactory.CreateAsync(new EventBusOptions
        {
            Backend = BusKinds.Ipc, Name = BusName, NodeId = "bench-host",
            Ipc = IpcEventBusOptions.Default with { RootDirectory = root },
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            var joined = await EventBusFactory.CreateAsync(new EventBusOptions
            {
                Backend = BusKinds.Ipc, Name = BusName, NodeId = "bench-joined", Role = EventBusRole.Join, Endpoints = [host.Endpoint],
            }, cancellationToken).ConfigureAwait(false);
            // A joined participant's full Wait-mode subscription drops and counts (its one reading thread serves every
            // subscription): a queue for the whole run measures a reader that falls behind as slower, not as lossy.
            return new BusContender("IpcEventBus, host (broker) -> joined participant, Unix domain socket", host, joined, payload, 1,
                options.QuietPeriod, () => DisposeBothAsync(joined, host), queueWholeRun: true);
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<IBenchContender> CreateJetStreamBusAsync(string url, byte[] payload, BusBenchOptions options, CancellationToken cancellationToken)
    {
        // A bus of its own per run; the publishing participant deletes its stream when disposed.
        var name = $"bench-{Guid.NewGuid():N}"[..14];
        var publisher = await EventBusFactory.CreateAsync(new EventBusOptions
        {
            Backend = BusKinds.JetStream, Name = name, NodeId = "bench-publisher", NatsUrl = url,
            JetStream = JetStreamEventBusOptions.Default with { DeleteStreamOnDispose = true },
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            var subscriber = await EventBusFactory.CreateAsync(new EventBusOptions
            {
                Backend = BusKinds.JetStream, Name = name, NodeId = "bench-subscriber", Role = EventBusRole.Join, Endpoints = [url],
            }, cancellationToken).ConfigureAwait(false);
            return new BusContender($"JetStreamEventBus, two connections, {options.InFlight} publishes in flight", publisher, subscriber, payload,
                options.InFlight, options.QuietPeriod, () => DisposeBothAsync(subscriber, publisher));
        }
        catch
        {
            await publisher.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask DisposeBothAsync(IEventBus first, IEventBus second)
    {
        await first.DisposeAsync().ConfigureAwait(false);
        await second.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<string> NatsServerAsync(BusBenchOptions options, RegistryClientOptions? registry, TextWriter diagnostics, CancellationToken cancellationToken)
    {
        if (options.NatsUrl is { Length: > 0 } url)
        {
            NatsUrl = url;
            NatsServerSource = "given with --nats-url";
            return url;
        }
        BenchNatsServer.FindExecutable();
        var port = await LeasedPort.LeaseAsync(registry, "onex bench bus: nats-server", cancellationToken).ConfigureAwait(false);
        var server = await BenchNatsServer.StartAsync(port, diagnostics, cancellationToken).ConfigureAwait(false);
        _owned.Add(server);
        NatsUrl = server.Url;
        NatsServerSource = $"nats-server -js started for this run, port leased from {server.PortSource}";
        return server.Url;
    }

    private string TemporaryDirectory()
    {
        // mkdtemp: mode 0700 and owned by this user, which the Unix-socket bus requires of its root.
        var directory = Directory.CreateTempSubdirectory("onex-bench-").FullName;
        _directories.Add(directory);
        return directory;
    }
}
