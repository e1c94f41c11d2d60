using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;

namespace Onex.Cli.Bench;

/// <summary>
/// Runs the comparison: one warm-up of every contender, then <see cref="BusBenchOptions.Rounds"/> rounds in which bus
/// and raw (and any extra round-trip reference) each run one throughput measurement and one series of ping-pongs,
/// taking turns at going first so that load changes on a shared machine hit both alike.
/// </summary>
internal static class BusBenchRunner
{
    private const int MaxWarmUpPasses = 5;
    // What a pass compiles once hot paths are final: a few stragglers, nothing that costs a measured round.
    private const int SettledCompilations = 10;

    public static async Task<BusBenchReport> RunAsync(
        BusBenchOptions options, BusBenchSetup setup, TextWriter progress, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var startedAt = timeProvider.GetUtcNow();
        var clock = Stopwatch.StartNew();
        var loadBefore = BenchMachine.ReadLoadAverage();
        var count = options.EffectiveCount;
        var roundTrips = options.EffectiveRoundTrips;
        var references = setup.RoundTripComparisons;
        var throughputReferences = setup.ThroughputComparisons;

        // Warm up until a pass compiles hardly any methods: the JIT recompiles hot methods in the background (tiered
        // compilation), which on two cores would otherwise steal time from the first measured round.
        for (var pass = 1; pass <= MaxWarmUpPasses; pass++)
        {
            var compiledBefore = JitInfo.GetCompiledMethodCount();
            foreach (var contender in new[] { setup.Bus, setup.Raw }.Concat(throughputReferences.Select(r => r.Contender)))
                await contender.MeasureThroughputAsync(options.WarmUpCount, cancellationToken).ConfigureAwait(false);
            foreach (var contender in new[] { setup.Bus, setup.Raw }.Concat(references.Select(r => r.Contender)))
                await contender.MeasureRoundTripsAsync(options.WarmUpRoundTrips, cancellationToken).ConfigureAwait(false);
            var compiled = JitInfo.GetCompiledMethodCount() - compiledBefore;
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"onex bench: warm-up pass {pass} ({options.WarmUpCount:N0} events, {options.WarmUpRoundTrips:N0} ping-pongs each): {compiled} methods compiled"))
                .ConfigureAwait(false);
            if (compiled <= SettledCompilations) break;
        }

        var busThroughput = new List<ThroughputSample>();
        var rawThroughput = new List<ThroughputSample>();
        var busRoundTrips = new List<long[]>();
        var rawRoundTrips = new List<long[]>();
        var referenceRoundTrips = references.Select(_ => new List<long[]>()).ToArray();
        var referenceThroughput = throughputReferences.Select(_ => new List<ThroughputSample>()).ToArray();
        for (var round = 0; round < options.Rounds; round++)
        {
            var busFirst = round % 2 == 0;
            var (first, second) = busFirst ? (setup.Bus, setup.Raw) : (setup.Raw, setup.Bus);
            var a = await ProcessCost.MeasureAsync(() => first.MeasureThroughputAsync(count, cancellationToken)).ConfigureAwait(false);
            var b = await ProcessCost.MeasureAsync(() => second.MeasureThroughputAsync(count, cancellationToken)).ConfigureAwait(false);
            busThroughput.Add(busFirst ? a : b);
            rawThroughput.Add(busFirst ? b : a);
            for (var i = 0; i < throughputReferences.Count; i++)
                referenceThroughput[i].Add(await ProcessCost.MeasureAsync(() => throughputReferences[i].Contender.MeasureThroughputAsync(count, cancellationToken)).ConfigureAwait(false));

            var x = await first.MeasureRoundTripsAsync(roundTrips, cancellationToken).ConfigureAwait(false);
            var y = await second.MeasureRoundTripsAsync(roundTrips, cancellationToken).ConfigureAwait(false);
            busRoundTrips.Add(busFirst ? x : y);
            rawRoundTrips.Add(busFirst ? y : x);
            for (var i = 0; i < references.Count; i++)
                referenceRoundTrips[i].Add(await references[i].Contender.MeasureRoundTripsAsync(roundTrips, cancellationToken).ConfigureAwait(false));

            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"onex bench: round {round + 1}/{options.Rounds}: throughput bus {busThroughput[^1].EventsPerSecond:N0}/s, raw {rawThroughput[^1].EventsPerSecond:N0}/s; " +
                $"round trip median bus {MedianMicroseconds(busRoundTrips[^1]):0.0} µs, raw {MedianMicroseconds(rawRoundTrips[^1]):0.0} µs"))
                .ConfigureAwait(false);
        }

        var slowConsumer = setup.Bus is BusContender bus
            ? await RunSlowConsumerAsync(options, bus, progress, cancellationToken).ConfigureAwait(false)
            : null;

        var busThroughputFigures = BusBenchStatistics.Throughput(busThroughput, options.PayloadBytes);
        var rawThroughputFigures = BusBenchStatistics.Throughput(rawThroughput, options.PayloadBytes);
        var busLatency = BusBenchStatistics.Latency(busRoundTrips);
        var rawLatency = BusBenchStatistics.Latency(rawRoundTrips);
        return new BusBenchReport
        {
            Backend = options.Backend,
            PayloadBytes = options.PayloadBytes,
            Count = count,
            RoundTrips = roundTrips,
            Rounds = options.Rounds,
            InFlight = options.Backend == Protocol.BusKinds.JetStream ? options.InFlight : 1,
            Bus = setup.Bus.Description,
            Raw = setup.Raw.Description,
            ZmqHighWatermark = options.Backend is Protocol.BusKinds.Zmq or Protocol.BusKinds.Ipc ? options.ZmqHighWatermark : null,
            NatsUrl = setup.NatsUrl,
            NatsServer = setup.NatsServerSource,
            Throughput = new ThroughputComparison(busThroughputFigures, rawThroughputFigures,
                BusBenchStatistics.Ratio(busThroughputFigures.EventsPerSecond, rawThroughputFigures.EventsPerSecond)),
            RoundTrip = new RoundTripComparison(busLatency, rawLatency,
                BusBenchStatistics.Ratio(busLatency.MedianMicroseconds, rawLatency.MedianMicroseconds),
                BusBenchStatistics.Ratio(busLatency.P90Microseconds, rawLatency.P90Microseconds),
                BusBenchStatistics.Ratio(busLatency.P99Microseconds, rawLatency.P99Microseconds)),
            RoundTripComparisons = references.Select((reference, i) =>
            {
                var figures = BusBenchStatistics.Latency(referenceRoundTrips[i]);
                return new RoundTripReference(reference.Name, reference.Contender.Description, figures,
                    BusBenchStatistics.Ratio(busLatency.MedianMicroseconds, figures.MedianMicroseconds));
            }).ToArray(),
            ThroughputComparisons = throughputReferences.Select((reference, i) =>
            {
                var figures = BusBenchStatistics.Throughput(referenceThroughput[i], options.PayloadBytes);
                return new ThroughputReference(reference.Name, reference.Contender.Description, figures,
                    BusBenchStatistics.Ratio(figures.EventsPerSecond, rawThroughputFigures.EventsPerSecond));
            }).ToArray(),
            SlowConsumer = slowConsumer,
            Machine = new BenchMachine(Environment.ProcessorCount, RuntimeInformation.OSDescription, Environment.Version.ToString(),
                loadBefore, BenchMachine.ReadLoadAverage()),
            StartedAt = startedAt,
            DurationSeconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>
    /// The slow-consumer case on the bus's own participants: one warm-up of each kind, then <see cref="BusBenchOptions.Rounds"/>
    /// rounds of a run of each kind (<see cref="ThirdSubscription"/>), the order rotated per round.
    /// </summary>
    private static async Task<SlowConsumerFigures> RunSlowConsumerAsync(
        BusBenchOptions options, BusContender bus, TextWriter progress, CancellationToken cancellationToken)
    {
        var count = options.EffectiveCount;
        var inFlight = options.Backend == Protocol.BusKinds.JetStream ? options.InFlight : 1;
        var slow = new SlowConsumerCase(bus.Publisher, bus.Subscriber, BenchLoops.Payload(options.PayloadBytes), inFlight, options.QuietPeriod);
        ThirdSubscription[] kinds = [ThirdSubscription.Stalled, ThirdSubscription.None, ThirdSubscription.Reading];
        foreach (var kind in kinds) await slow.MeasureAsync(count, kind, cancellationToken).ConfigureAwait(false);

        var samples = kinds.ToDictionary(kind => kind, _ => new List<SlowConsumerSample>());
        for (var round = 0; round < options.Rounds; round++)
        {
            for (var turn = 0; turn < kinds.Length; turn++)
            {
                var kind = kinds[(round + turn) % kinds.Length];
                samples[kind].Add(await MeasureWithCostAsync(slow, count, kind, cancellationToken).ConfigureAwait(false));
            }
            var (stalledRun, alone, reading) = (samples[ThirdSubscription.Stalled][^1], samples[ThirdSubscription.None][^1], samples[ThirdSubscription.Reading][^1]);
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"onex bench: slow consumer {round + 1}/{options.Rounds}: fast subscriptions {stalledRun.Fast.EventsPerSecond:N0}/s beside a stalled one, " +
                $"{reading.Fast.EventsPerSecond:N0}/s beside a reading one, {alone.Fast.EventsPerSecond:N0}/s alone; stalled queue {stalledRun.PeakPendingEvents:N0} events, " +
                $"{stalledRun.PeakPendingBytes:N0} bytes, {stalledRun.Dropped:N0} dropped")).ConfigureAwait(false);
        }

        var stalled = samples[ThirdSubscription.Stalled];
        var limits = SlowConsumerCase.StalledOptions;
        var oneEvent = Onex.Bus.EventChannel.PendingSize(Onex.Events.OnexEvent.Create("bench.slow", BenchLoops.Payload(options.PayloadBytes)));
        ThroughputFigures Figures(ThirdSubscription kind) => BusBenchStatistics.Throughput(samples[kind].Select(s => s.Fast).ToArray(), options.PayloadBytes);
        var (stalledFigures, aloneFigures, readingFigures) = (Figures(ThirdSubscription.Stalled), Figures(ThirdSubscription.None), Figures(ThirdSubscription.Reading));
        var peakEvents = stalled.Max(s => s.PeakPendingEvents);
        var peakBytes = stalled.Max(s => s.PeakPendingBytes);
        return new SlowConsumerFigures(
            SlowConsumerCase.FastSubscriptions, limits.Capacity, limits.MaxPendingBytes,
            limits.FullMode?.ToString() ?? (options.Backend == Protocol.BusKinds.JetStream ? "Wait (backend default)" : "DropNewest (backend default)"),
            aloneFigures, stalledFigures, BusBenchStatistics.Ratio(stalledFigures.EventsPerSecond, aloneFigures.EventsPerSecond),
            peakEvents, peakBytes, stalled.Sum(s => s.Dropped),
            // PendingBytes may exceed the byte limit by one event (one larger than the limit is never stuck).
            peakEvents <= limits.Capacity && peakBytes <= limits.MaxPendingBytes + oneEvent)
        {
            Reading = readingFigures,
            RatioToReading = BusBenchStatistics.Ratio(stalledFigures.EventsPerSecond, readingFigures.EventsPerSecond),
        };
    }

    /// <summary>One slow-consumer run with the process's CPU time and allocations per event (robust to machine load, where events/s is not).</summary>
    private static async Task<SlowConsumerSample> MeasureWithCostAsync(SlowConsumerCase slow, int count, ThirdSubscription third, CancellationToken cancellationToken)
    {
        SlowConsumerSample sample = default;
        var fast = await ProcessCost.MeasureAsync(async () =>
        {
            sample = await slow.MeasureAsync(count, third, cancellationToken).ConfigureAwait(false);
            return sample.Fast;
        }).ConfigureAwait(false);
        return sample with { Fast = fast };
    }

    private static double MedianMicroseconds(long[] ticks) => BusBenchStatistics.Median(ticks.Select(BusBenchStatistics.Microseconds).ToArray());
}
