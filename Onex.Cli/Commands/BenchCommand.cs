using System.CommandLine;
using Onex.Cli.Bench;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands;

/// <summary>
/// <c>onex bench bus</c>: measures a bus backend against the raw transport it runs on, in one run (throughput and
/// round trip, bus and raw alternating over rounds), and prints both with their ratios. Loopback only.
/// </summary>
internal static class BenchCommand
{
    private const int MaxPayloadBytes = 1024 * 1024;

    public static Command Build(CliContext context) => new("bench", "Measure, on this machine, what the buses cost over their raw transports.")
    {
        BuildBus(context),
    };

    private static Command BuildBus(CliContext context)
    {
        var backend = CliValues.Choice("--backend", "BACKEND", "memory, zmq, ipc or jetstream.", EventBusFactory.Backends, required: true);
        var size = CliValues.Number("--size", "BYTES", "Payload bytes per event.", 1, MaxPayloadBytes, BusBenchOptions.Default.PayloadBytes);
        var count = CliValues.OptionalNumber("--count", "N",
            $"Events per throughput round (default {BusBenchOptions.DefaultCount:N0}; jetstream {BusBenchOptions.DefaultJetStreamCount:N0}).", 1);
        var roundTrips = CliValues.OptionalNumber("--round-trips", "N", $"Ping-pongs per round (default {BusBenchOptions.DefaultRoundTrips:N0}).", 1);
        var rounds = CliValues.Number("--rounds", "N", "Measured rounds; bus and raw alternate, medians are reported.", 1, 100, BusBenchOptions.Default.Rounds);
        var inFlight = CliValues.Number("--in-flight", "N", "jetstream: publishes awaiting their PubAck at once, for bus and raw alike.", 1, 65536,
            BusBenchOptions.Default.InFlight);
        var natsUrl = new Option<string?>("--nats-url")
        {
            Description = "jetstream: a NATS server with JetStream to use; without it a private nats-server is started on a port leased " +
                          "from the registry (--registry or $ONEX_REGISTRY_ENDPOINT, else one started in-process).",
            HelpName = "URL",
        };
        var highWatermark = CliValues.Number("--zmq-hwm", "N",
            "zmq (and the zmq comparison of ipc): high-water mark of bus and raw sockets alike; 0 (default) is unlimited, " +
            "so that no burst is dropped (the project's default is 100000).", 0, defaultValue: 0);
        var json = DescribeCommand.JsonOption("one object with bus and raw figures and their ratios");

        var command = new Command("bus",
            "Throughput (one publisher, one subscriber in Wait mode reading everything) and round trip (ping-pong) of one backend, " +
            "and of its raw transport in the same run: Channel<T>, NetMQ PUB/SUB and DEALER/ROUTER, a Unix socket pair, or NATS.Net JetStream. " +
            $"Here --timeout bounds the whole run (default {BusBenchOptions.Default.Timeout.TotalSeconds:0} s). Progress goes to stderr.")
        {
            backend, size, count, roundTrips, rounds, inFlight, natsUrl, highWatermark, json,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var options = BusBenchOptions.Default with
            {
                Backend = parse.GetRequiredValue(backend)!,
                PayloadBytes = parse.GetValue(size),
                Count = parse.GetValue(count),
                RoundTrips = parse.GetValue(roundTrips),
                Rounds = parse.GetValue(rounds),
                InFlight = parse.GetValue(inFlight),
                NatsUrl = parse.GetValue(natsUrl),
                ZmqHighWatermark = parse.GetValue(highWatermark),
                // The shared --timeout (registry answers, 5 s by default) bounds the whole run when given.
                Timeout = parse.GetValue(CliContext.TimeoutOption) is { } timeout
                    ? TimeSpan.FromSeconds(Math.Max(1, timeout.TotalSeconds))
                    : BusBenchOptions.Default.Timeout,
            };
            if (parse.GetValue(CliContext.TimeoutOption) is { } given && given < options.Timeout)
                await context.Error.WriteLineAsync($"onex: warning: --timeout {Durations.Format(given)} is below the bench's least, 1s; using 1s.").ConfigureAwait(false);

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(options.Timeout);
            try
            {
                var registry = RegistryFor(context, parse);
                var setup = await BusBenchSetup.CreateAsync(options, registry, context.Error, deadline.Token).ConfigureAwait(false);
                BusBenchReport report;
                try
                {
                    report = await BusBenchRunner.RunAsync(options, setup, context.Error, TimeProvider.System, deadline.Token).ConfigureAwait(false);
                }
                finally
                {
                    await setup.DisposeAsync(context.Error).ConfigureAwait(false);
                }

                if (parse.GetValue(json))
                    await context.Output.WriteLineAsync(CliJson.Serialize(report)).ConfigureAwait(false);
                else
                    report.WriteTable(context.Output);
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                await context.Error.WriteLineAsync(
                    $"onex: bench bus --backend {options.Backend} did not finish within {options.Timeout.TotalSeconds:0} s; " +
                    "pass a larger --timeout or a smaller --count/--round-trips/--rounds.").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
        }));
        return command;
    }

    /// <summary>The registry named on the command line or in the environment, if any (only used to lease nats-server's port).</summary>
    private static RegistryClientOptions? RegistryFor(CliContext context, ParseResult parse)
    {
        var named = parse.GetValue(CliContext.RegistryOption) is { Length: > 0 }
                    || Environment.GetEnvironmentVariable(RegistryEndpoints.RouterVariable) is { Length: > 0 };
        return named
            ? context.ClientOptions(parse, announce: true, nodeName: "onex bench") with { RequestTimeout = TimeSpan.FromSeconds(2), MaxAttempts = 3 }
            : null;
    }
}
