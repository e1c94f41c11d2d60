using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Events;
using Onex.Protocol;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands;

/// <summary>
/// <c>onex bus host|publish|subscribe</c>: take part in an event bus of any backend from a shell (and from the
/// cross-process tests). Each prints JSON lines on stdout so scripts can follow along.
/// </summary>
internal static class BusCommand
{
    private static readonly Option<string?> BackendOption =
        CliValues.Choice("--backend", "BACKEND", "memory, zmq, ipc or jetstream (default: $ONEX_BUS, else memory).", EventBusFactory.Backends);

    private static readonly Option<string> NameOption = new("--name")
    {
        Description = "The bus name (default: $ONEX_BUS_NAME, else default).",
        HelpName = "NAME",
    };

    private static readonly Option<string> EndpointsOption = new("--endpoints")
    {
        Description = "Comma-separated endpoints of the bus to join (zmq: publish,subscribe; ipc: unix://path; jetstream: nats://host:port). " +
                      "Without them the bus is looked up by name in the registry given by --registry or $ONEX_REGISTRY_ENDPOINT.",
        HelpName = "ENDPOINTS",
    };

    private static readonly Option<bool> UseRegistryOption = new("--use-registry")
    {
        Description = "Lease ports from and register with the registry (--registry, else $ONEX_REGISTRY_ENDPOINT, else the default endpoint).",
    };

    private static readonly Option<string> NodeIdOption = new("--node-id")
    {
        Description = "The node id to register under (with the registry). A host restarted with the same id takes its bus and its ports back.",
        HelpName = "ID",
    };

    private static readonly Option<string> NodeIdFileOption = new("--node-id-file")
    {
        Description = "A file keeping the node id across restarts (created with a new id when missing); like --node-id, for a host that comes back.",
        HelpName = "PATH",
    };

    public static Command Build(CliContext context)
    {
        var heartbeatTopic = new Option<string?>("--publish-topic")
        {
            Description = "While hosting, publish numbered events (payload: the number from 1, a space, the process id) on this topic, e.g. for a restart drill.",
            HelpName = "TOPIC",
            CustomParser = result => result.Tokens.Count == 0 ? null : CliValues.ParseTopic(result, "--publish-topic"),
        };
        var heartbeatInterval = CliValues.Number("--publish-interval", "MS", "Milliseconds between two of those events.", 1, 60_000, defaultValue: 10);
        var host = new Command("host", "Host a bus and keep it up until Ctrl-C, SIGTERM or end of stdin; prints its endpoints.")
        {
            BackendOption, NameOption, EndpointsOption, UseRegistryOption, NodeIdOption, NodeIdFileOption, heartbeatTopic, heartbeatInterval,
        };
        host.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var session = await BusSession.OpenAsync(context, parse, EventBusRole.Host, cancellationToken).ConfigureAwait(false);
            await context.Output.WriteLineAsync(CliJson.Serialize(new
            {
                status = "hosting",
                backend = session.Options.Backend,
                name = session.Bus.Name,
                endpoints = session.Endpoints,
                nodeId = session.NodeId,
            }, indented: false)).ConfigureAwait(false);
            await context.Output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            using var stopPublishing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var publishing = parse.GetValue(heartbeatTopic) is { } ticks
                ? PublishNumberedAsync(session.Bus, ticks, TimeSpan.FromMilliseconds(parse.GetValue(heartbeatInterval)), stopPublishing.Token)
                : Task.CompletedTask;
            try
            {
                await PortsCommand.WaitForStdinToCloseAsync(context.Input, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                await stopPublishing.CancelAsync().ConfigureAwait(false);
                await publishing.ConfigureAwait(false);
            }
            return ExitCodes.Ok;
        }));

        var topic = new Option<string>("--topic")
        {
            Description = "Topic to publish to (dot-separated tokens, e.g. orders.created).", HelpName = "TOPIC", Required = true,
            CustomParser = result => CliValues.ParseTopic(result, "--topic"),
        };
        var count = CliValues.Number("--count", "N", "How many events.", 0, defaultValue: 1);
        var size = CliValues.Number("--size", "BYTES", "Payload size in bytes (at least the sequence number's digits).", 0, 16 * 1024 * 1024, defaultValue: 0);
        var publish = new Command("publish", "Join a bus and publish N events whose payload starts with their sequence number (1..N).")
        {
            BackendOption, NameOption, EndpointsOption, UseRegistryOption, topic, count, size,
        };
        publish.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var session = await BusSession.OpenAsync(context, parse, EventBusRole.Join, cancellationToken).ConfigureAwait(false);
            var events = parse.GetValue(count);
            for (var sequence = 1; sequence <= events; sequence++)
                await session.Bus.PublishAsync(parse.GetValue(topic)!, Payload(sequence, parse.GetValue(size)), "onex.cli", cancellationToken)
                    .ConfigureAwait(false);
            await context.Output.WriteLineAsync(CliJson.Serialize(new { status = "published", count = events }, indented: false)).ConfigureAwait(false);
            return ExitCodes.Ok;
        }));

        var pattern = new Option<string>("--pattern")
        {
            Description = "Topic pattern ('*' one token, '>' the rest).", HelpName = "PATTERN", Required = true,
            CustomParser = result => CliValues.ParsePattern(result, "--pattern"),
        };
        var until = CliValues.Number("--count", "N", "Exit after this many events (0: until interrupted).", 0, defaultValue: 0);
        var durable = new Option<string?>("--durable") { Description = "Durable subscription name (jetstream).", HelpName = "NAME" };
        var subscribe = new Command("subscribe", "Join a bus, subscribe, and print one JSON line per event; the first line says the subscription is live.")
        {
            BackendOption, NameOption, EndpointsOption, UseRegistryOption, pattern, until, durable,
        };
        subscribe.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var session = await BusSession.OpenAsync(context, parse, EventBusRole.Join, cancellationToken).ConfigureAwait(false);
            // Notices arrive on the bus's threads; a pump prints them between event lines, so nothing is lost silently.
            var output = new SemaphoreSlim(1, 1);
            var notices = Channel.CreateBounded<BusNotice>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropOldest });
            void OnNotice(object? sender, BusNotice notice) => notices.Writer.TryWrite(notice);
            session.Bus.Health.Notice += OnNotice;
            using var stopNotices = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var noticePump = PrintNoticesAsync(context, notices.Reader, output, stopNotices.Token);
            try
            {
                await using var subscription = await session.Bus.SubscribeAsync(
                    parse.GetValue(pattern)!, SubscriptionOptions.Default with { DurableName = parse.GetValue(durable) }, cancellationToken).ConfigureAwait(false);
                await WriteLineAsync(context, output, CliJson.Serialize(new { status = "subscribed", pattern = subscription.Pattern }, indented: false), cancellationToken).ConfigureAwait(false);
                var wanted = parse.GetValue(until);
                var received = 0;
                await foreach (var evt in subscription.WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    await WriteLineAsync(context, output, CliJson.Serialize(new
                    {
                        topic = evt.Topic,
                        eventId = evt.EventId,
                        sourceNodeId = evt.SourceNodeId,
                        sequence = SequenceOf(evt.Payload.Span),
                        size = evt.Payload.Length,
                        traceparent = evt.Headers.GetValueOrDefault(Onex.Diagnostics.OnexBusDiagnostics.TraceParentHeader),
                    }, indented: false), cancellationToken).ConfigureAwait(false);
                    if (++received == wanted) break;
                }
                return ExitCodes.Ok;
            }
            finally
            {
                session.Bus.Health.Notice -= OnNotice;
                notices.Writer.TryComplete();
                await noticePump.ConfigureAwait(false);
            }
        }));

        return new Command("bus", "Take part in an event bus: host one, publish to one, subscribe to one.") { host, publish, subscribe };
    }

    /// <summary>
    /// Publishes events numbered from 1 every <paramref name="interval"/> until cancelled; the payload is the number, a
    /// space and this process's id, so a subscriber tells a restarted host's events from its previous run's.
    /// </summary>
    private static async Task PublishNumberedAsync(IEventBus bus, string topic, TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            for (long sequence = 1; await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false); sequence++)
                await bus.PublishAsync(topic, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{sequence} {Environment.ProcessId}")),
                    "onex.cli", cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Hosting ended.
        }
    }

    /// <summary>
    /// Prints each bus notice as a JSON line with <c>"status":"notice"</c>: the connection state, a slow consumer, or a
    /// drop with its cause, how many this time and in total.
    /// </summary>
    private static async Task PrintNoticesAsync(CliContext context, ChannelReader<BusNotice> notices, SemaphoreSlim output, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var notice in notices.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await WriteLineAsync(context, output, CliJson.Serialize(new
                {
                    status = "notice",
                    kind = JsonName(notice.Kind.ToString()),
                    state = JsonName(notice.State.ToString()),
                    cause = notice.Cause is { } cause ? JsonName(cause.ToString()) : null,
                    count = notice.Count,
                    total = notice.Total,
                    pattern = notice.Pattern,
                    detail = notice.Detail,
                }, indented: false), cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Interrupted with the command.
        }
    }

    private static string JsonName(string name) => char.ToLowerInvariant(name[0]) + name[1..];

    private static async Task WriteLineAsync(CliContext context, SemaphoreSlim output, string line, CancellationToken cancellationToken)
    {
        await output.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await context.Output.WriteLineAsync(line).ConfigureAwait(false);
            await context.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            output.Release();
        }
    }

    /// <summary>The payload of event <paramref name="sequence"/>: its decimal digits, then padding up to <paramref name="size"/>.</summary>
    internal static byte[] Payload(long sequence, int size)
    {
        var digits = Encoding.ASCII.GetBytes(sequence.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var payload = new byte[Math.Max(size, digits.Length + 1)];
        digits.CopyTo(payload, 0);
        payload[digits.Length] = (byte)' ';
        return payload;
    }

    /// <summary>The sequence number at the start of a payload written by <see cref="Payload"/>, or -1.</summary>
    internal static long SequenceOf(ReadOnlySpan<byte> payload)
    {
        var end = payload.IndexOf((byte)' ');
        return end > 0 && long.TryParse(Encoding.ASCII.GetString(payload[..end]), out var sequence) ? sequence : -1;
    }

    /// <summary>A bus (and the registry client behind it, if any) opened from the command line.</summary>
    private sealed class BusSession : IAsyncDisposable
    {
        private readonly RegistryClient? _registry;

        private BusSession(EventBusOptions options, IEventBus bus, RegistryClient? registry)
        {
            Options = options;
            Bus = bus;
            _registry = registry;
        }

        public EventBusOptions Options { get; }
        public IEventBus Bus { get; }
        public string? NodeId => _registry?.NodeId;

        public IReadOnlyList<string> Endpoints => Bus switch
        {
            RegisteredEventBus registered => EndpointsOf(registered.Inner),
            _ => EndpointsOf(Bus),
        };

        public static async Task<BusSession> OpenAsync(CliContext context, ParseResult parse, EventBusRole role, CancellationToken cancellationToken)
        {
            var options = FromCommandLine(parse, role);

            // A registry is used when asked for, or when joining by name without endpoints.
            var wantsRegistry = parse.GetValue(UseRegistryOption) || (role == EventBusRole.Join && options.Endpoints.Count == 0 && options.Backend != "memory");
            RegistryClient? registry = null;
            if (wantsRegistry)
            {
                var clientOptions = context.ClientOptions(parse, announce: role == EventBusRole.Host, nodeName: "onex bus");
                if (role == EventBusRole.Host)
                    clientOptions = clientOptions with { NodeId = parse.GetValue(NodeIdOption), NodeIdFile = parse.GetValue(NodeIdFileOption) };
                try
                {
                    registry = await RegistryClient.ConnectAsync(clientOptions, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException && clientOptions.NodeIdFile is not null)
                {
                    throw new UsageException($"--node-id-file: {ex.Message}");
                }
                options = options with { Registry = registry };
            }
            try
            {
                var bus = await EventBusFactory.CreateAsync(options, cancellationToken).ConfigureAwait(false);
                return new BusSession(options, bus, registry);
            }
            catch
            {
                if (registry is not null) await registry.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        /// <summary>The bus options from the environment and the command line, checked before anything is opened.</summary>
        private static EventBusOptions FromCommandLine(ParseResult parse, EventBusRole role)
        {
            EventBusOptions options;
            try
            {
                options = EventBusOptions.FromEnvironment() with { Role = role };
            }
            catch (ArgumentException ex)
            {
                throw new UsageException($"{ex.Message} Fix the variable or unset it.");
            }
            if (parse.GetValue(BackendOption) is { Length: > 0 } backend) options = options with { Backend = backend };
            else if (!EventBusFactory.Backends.Contains(options.Backend))
                throw new UsageException($"ONEX_BUS='{options.Backend}' is not a backend; set it to one of {string.Join(", ", EventBusFactory.Backends)}, or give --backend zmq.");
            if (parse.GetValue(NameOption) is { Length: > 0 } name) options = options with { Name = name };
            if (parse.GetValue(EndpointsOption) is { Length: > 0 } endpoints)
                options = options with { Endpoints = endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
            var command = role == EventBusRole.Host ? "host" : parse.CommandResult.Command.Name;
            if (role == EventBusRole.Join && options.Backend == BusKinds.Memory)
                throw new UsageException(
                    $"the memory backend lives inside one process, so 'onex bus {command}' cannot join it; use a backend other processes can reach: " +
                    "--backend zmq|ipc|jetstream (with --endpoints, or a bus of that name in the registry), e.g. 'onex bus host --backend ipc' in another shell.");
            if (options.Endpoints.Count > 0 && EndpointsProblem(options.Backend, options.Endpoints) is { } problem)
                throw new UsageException($"--endpoints: {problem}");
            return options;
        }

        /// <summary>Why <paramref name="endpoints"/> cannot be the endpoints of a <paramref name="backend"/> bus; null when they can.</summary>
        internal static string? EndpointsProblem(string backend, IReadOnlyList<string> endpoints)
        {
            var given = string.Join(",", endpoints);
            switch (backend)
            {
                case BusKinds.Zmq:
                    if (endpoints.Count != 2 || endpoints.Any(e => CliValues.EndpointProblem(e) is not null))
                        return $"'{given}' is not a zmq bus's two endpoints; write PUBLISH,SUBSCRIBE, e.g. --endpoints tcp://127.0.0.1:20001,tcp://127.0.0.1:20002 (as `onex bus host` prints them).";
                    return null;
                case BusKinds.Ipc:
                    if (endpoints.Count != 1 || !(endpoints[0].StartsWith("unix:///", StringComparison.Ordinal) || endpoints[0].StartsWith('/')))
                        return $"'{given}' is not an ipc bus's endpoint; write unix:///PATH/TO/bus.sock (as `onex bus host --backend ipc` prints it).";
                    return null;
                case BusKinds.JetStream:
                    if (endpoints.Count != 1 || !Uri.TryCreate(endpoints[0], UriKind.Absolute, out var url) || url.Scheme is not ("nats" or "tls" or "ws" or "wss") || url.Port <= 0)
                        return $"'{given}' is not a NATS server URL; write nats://HOST:PORT, e.g. --endpoints nats://127.0.0.1:4222.";
                    return null;
                default:
                    return $"a {backend} bus takes no endpoints; leave --endpoints out.";
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Bus.DisposeAsync().ConfigureAwait(false);
            if (_registry is not null) await _registry.DisposeAsync().ConfigureAwait(false);
        }

        private static IReadOnlyList<string> EndpointsOf(IEventBus bus) => bus switch
        {
            Transports.Zmq.ZmqEventBus zmq => [zmq.PublishEndpoint, zmq.SubscribeEndpoint],
            Transports.Ipc.IpcEventBus ipc => [ipc.Endpoint],
            Transports.JetStream.JetStreamEventBus jetStream => [jetStream.Endpoint],
            _ => [],
        };
    }
}
