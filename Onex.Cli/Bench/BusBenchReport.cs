using System.Globalization;
using Onex.Cli.Output;

namespace Onex.Cli.Bench;

/// <summary>The result of <c>onex bench bus</c>, as printed with <c>--json</c> (camelCase).</summary>
internal sealed record BusBenchReport
{
    public required string Backend { get; init; }
    public required int PayloadBytes { get; init; }
    public required int Count { get; init; }
    public required int RoundTrips { get; init; }
    public required int Rounds { get; init; }
    public required int InFlight { get; init; }
    public required string Bus { get; init; }
    public required string Raw { get; init; }
    /// <summary>High-water mark of the ZeroMQ sockets (0 = unlimited); null when no ZeroMQ socket was measured.</summary>
    public int? ZmqHighWatermark { get; init; }
    public string? NatsUrl { get; init; }
    public string? NatsServer { get; init; }
    public required ThroughputComparison Throughput { get; init; }
    public required RoundTripComparison RoundTrip { get; init; }

    /// <summary>Other round trips measured in the same rounds, with the bus's round trip relative to each.</summary>
    public required IReadOnlyList<RoundTripReference> RoundTripComparisons { get; init; }

    /// <summary>Other bus throughputs measured in the same rounds, each relative to the raw throughput.</summary>
    public required IReadOnlyList<ThroughputReference> ThroughputComparisons { get; init; }

    /// <summary>The slow-consumer case (one subscription stalled beside two fast ones); null for a raw-only run.</summary>
    public SlowConsumerFigures? SlowConsumer { get; init; }

    public required BenchMachine Machine { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required double DurationSeconds { get; init; }

    /// <summary>The human-readable form: a header, one table, the lost-event count.</summary>
    public void WriteTable(TextWriter writer)
    {
        writer.WriteLine($"onex bench bus --backend {Backend}: {PayloadBytes}-byte payloads; throughput {Count:N0} events, round trip {RoundTrips:N0} ping-pongs; " +
                         $"{Rounds} rounds, bus and raw alternating; medians");
        writer.WriteLine($"  bus: {Bus}");
        writer.WriteLine($"  raw: {Raw}");
        if (ZmqHighWatermark is { } hwm) writer.WriteLine($"  zmq high-water mark: {(hwm == 0 ? "unlimited" : hwm.ToString("N0", CultureInfo.InvariantCulture))}");
        if (NatsUrl is not null) writer.WriteLine($"  nats: {NatsUrl} ({NatsServer})");
        writer.WriteLine($"  machine: {Machine.ProcessorCount} cores, {Machine.Os}, .NET {Machine.Runtime}; load average {Machine.LoadAverageBefore ?? "?"} before, {Machine.LoadAverageAfter ?? "?"} after");
        writer.WriteLine();

        var table = new TextTable("measure", "bus", "raw", "bus/raw");
        table.Add("throughput (events/s)", Whole(Throughput.Bus.EventsPerSecond), Whole(Throughput.Raw.EventsPerSecond), Ratio(Throughput.Ratio));
        table.Add("throughput (MB/s payload)", Number(Throughput.Bus.MegabytesPerSecond), Number(Throughput.Raw.MegabytesPerSecond), Ratio(Throughput.Ratio));
        table.Add("CPU per event (µs, process)", Micro(Throughput.Bus.CpuMicrosecondsPerEvent), Micro(Throughput.Raw.CpuMicrosecondsPerEvent),
            Ratio(BusBenchStatistics.Ratio(Throughput.Bus.CpuMicrosecondsPerEvent, Throughput.Raw.CpuMicrosecondsPerEvent)));
        table.Add("allocated per event (bytes)", Whole(Throughput.Bus.AllocatedBytesPerEvent), Whole(Throughput.Raw.AllocatedBytesPerEvent),
            Ratio(BusBenchStatistics.Ratio(Throughput.Bus.AllocatedBytesPerEvent, Throughput.Raw.AllocatedBytesPerEvent)));
        table.Add("round trip median (µs)", Number(RoundTrip.Bus.MedianMicroseconds), Number(RoundTrip.Raw.MedianMicroseconds), Ratio(RoundTrip.Ratio));
        table.Add("round trip p90 (µs)", Number(RoundTrip.Bus.P90Microseconds), Number(RoundTrip.Raw.P90Microseconds), Ratio(RoundTrip.P90Ratio));
        table.Add("round trip p99 (µs)", Number(RoundTrip.Bus.P99Microseconds), Number(RoundTrip.Raw.P99Microseconds), Ratio(RoundTrip.P99Ratio));
        table.WriteTo(writer);

        foreach (var reference in ThroughputComparisons)
        {
            writer.WriteLine();
            writer.WriteLine($"same rounds, {reference.Name} throughput ({reference.Description}):");
            var other = new TextTable("measure", reference.Name, "raw", $"{reference.Name}/raw");
            other.Add("throughput (events/s)", Whole(reference.Figures.EventsPerSecond), Whole(Throughput.Raw.EventsPerSecond), Ratio(reference.RawRatio));
            other.Add("throughput (MB/s payload)", Number(reference.Figures.MegabytesPerSecond), Number(Throughput.Raw.MegabytesPerSecond), Ratio(reference.RawRatio));
            other.Add("CPU per event (µs, process)", Micro(reference.Figures.CpuMicrosecondsPerEvent), Micro(Throughput.Raw.CpuMicrosecondsPerEvent),
                Ratio(BusBenchStatistics.Ratio(reference.Figures.CpuMicrosecondsPerEvent, Throughput.Raw.CpuMicrosecondsPerEvent)));
            other.Add("allocated per event (bytes)", Whole(reference.Figures.AllocatedBytesPerEvent), Whole(Throughput.Raw.AllocatedBytesPerEvent),
                Ratio(BusBenchStatistics.Ratio(reference.Figures.AllocatedBytesPerEvent, Throughput.Raw.AllocatedBytesPerEvent)));
            other.WriteTo(writer);
        }

        foreach (var reference in RoundTripComparisons)
        {
            writer.WriteLine();
            writer.WriteLine($"same rounds, {reference.Name} round trip ({reference.Description}):");
            var other = new TextTable("measure", reference.Name, "bus", $"bus/{reference.Name}");
            other.Add("round trip median (µs)", Number(reference.Figures.MedianMicroseconds), Number(RoundTrip.Bus.MedianMicroseconds), Ratio(reference.BusRatio));
            other.Add("round trip p90 (µs)", Number(reference.Figures.P90Microseconds), Number(RoundTrip.Bus.P90Microseconds),
                Ratio(BusBenchStatistics.Ratio(RoundTrip.Bus.P90Microseconds, reference.Figures.P90Microseconds)));
            other.Add("round trip p99 (µs)", Number(reference.Figures.P99Microseconds), Number(RoundTrip.Bus.P99Microseconds),
                Ratio(BusBenchStatistics.Ratio(RoundTrip.Bus.P99Microseconds, reference.Figures.P99Microseconds)));
            other.WriteTo(writer);
        }

        if (SlowConsumer is { } slow)
        {
            writer.WriteLine();
            writer.WriteLine($"same rounds, slow consumer ({slow.FastSubscriptions} fast subscriptions on the subscribing participant; " +
                             $"stalled: beside a third there that is never read; reading: beside a third that reads too; alone: no third; " +
                             $"limits of the third: {slow.StalledCapacity:N0} events, {slow.StalledMaxPendingBytes:N0} bytes, {slow.StalledFullMode}):");
            var table2 = new TextTable("measure", "stalled", "reading", "alone", "stalled/reading", "stalled/alone");
            table2.Add("fast throughput (events/s)", Whole(slow.Stalled.EventsPerSecond), Whole(slow.Reading?.EventsPerSecond ?? 0),
                Whole(slow.Unstalled.EventsPerSecond), Ratio(slow.RatioToReading), Ratio(slow.Ratio));
            table2.Add("CPU per event (µs, process)", Micro(slow.Stalled.CpuMicrosecondsPerEvent), Micro(slow.Reading?.CpuMicrosecondsPerEvent ?? 0),
                Micro(slow.Unstalled.CpuMicrosecondsPerEvent), "", "");
            table2.WriteTo(writer);
            writer.WriteLine($"stalled subscription, largest queue seen: {slow.PeakPendingEvents:N0} events, {slow.PeakPendingBytes:N0} bytes " +
                             $"({(slow.WithinLimits ? "within" : "OVER")} its limits); dropped {slow.StalledDropped:N0} (all rounds); " +
                             $"fast subscriptions lost {slow.Stalled.Lost} stalled, {slow.Reading?.Lost ?? 0} reading, {slow.Unstalled.Lost} alone");
        }

        writer.WriteLine();
        var otherLost = string.Concat(ThroughputComparisons.Select(r => $", {r.Name} {Lost(r.Figures)}"));
        writer.WriteLine($"lost events (all rounds): bus {Lost(Throughput.Bus)}, raw {Throughput.Raw.Lost}{otherLost}; ran {DurationSeconds:0.0} s");
        var silent = Throughput.Bus.Unaccounted + ThroughputComparisons.Sum(r => r.Figures.Unaccounted);
        if (silent > 0)
            writer.WriteLine($"SILENT LOSS: {silent:N0} events lost that no drop counter of the bus accounts for (a bug: a bus must count every event it loses)");
    }

    // A bus's loss with how much of it the bus counted as dropped (and so told its participants about).
    private static string Lost(ThroughputFigures figures) =>
        figures.Lost == 0 && figures.CountedDrops == 0
            ? "0"
            : $"{figures.Lost} ({figures.CountedDrops} counted as dropped by the bus, {figures.Unaccounted} not counted)";

    private static string Whole(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString(value >= 100 ? "0" : "0.0", CultureInfo.InvariantCulture);

    private static string Ratio(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);

    private static string Micro(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
}

/// <summary>Throughput of bus and raw; <see cref="Ratio"/> is bus events/s over raw events/s (1 = as fast as raw).</summary>
internal sealed record ThroughputComparison(ThroughputFigures Bus, ThroughputFigures Raw, double Ratio);

/// <summary>
/// One contender's throughput: the median over rounds of events read per second (first publish to last read), the
/// same in payload megabytes (10^6 bytes) per second, the events lost over all rounds, and each round's figure.
/// </summary>
internal sealed record ThroughputFigures(double EventsPerSecond, double MegabytesPerSecond, long Lost, IReadOnlyList<double> RoundEventsPerSecond)
{
    /// <summary>Of <see cref="Lost"/>, the events the bus counted as dropped (its health's drop counters), over all rounds.</summary>
    public long CountedDrops { get; init; }

    /// <summary>Events lost that no drop counter accounts for, over all rounds: silent loss, which a bus must never have.</summary>
    public long Unaccounted { get; init; }

    /// <summary>Median over rounds of the whole process's CPU time per event read (µs); robust to machine load where events/s is not.</summary>
    public double CpuMicrosecondsPerEvent { get; init; }

    /// <summary>Median over rounds of the bytes the process allocated per event read.</summary>
    public double AllocatedBytesPerEvent { get; init; }
}

/// <summary>
/// Round trips of bus and raw; the ratios are bus over raw (1 = as fast as raw, 2 = takes twice as long).
/// </summary>
internal sealed record RoundTripComparison(LatencyFigures Bus, LatencyFigures Raw, double Ratio, double P90Ratio, double P99Ratio);

/// <summary>
/// One contender's round trips: median, 90th and 99th percentile over all measured ping-pongs of all rounds, in
/// microseconds, how many there were, and each round's median.
/// </summary>
internal sealed record LatencyFigures(
    double MedianMicroseconds, double P90Microseconds, double P99Microseconds, int Samples, IReadOnlyList<double> RoundMediansMicroseconds);

/// <summary>Another bus throughput measured in the same rounds; <see cref="RawRatio"/> is its events/s over raw's.</summary>
internal sealed record ThroughputReference(string Name, string Description, ThroughputFigures Figures, double RawRatio);

/// <summary>Another round trip measured in the same rounds; <see cref="BusRatio"/> is the bus's median over this one's.</summary>
internal sealed record RoundTripReference(string Name, string Description, LatencyFigures Figures, double BusRatio);

/// <summary>
/// The slow-consumer case: the fast subscriptions' throughput beside a stalled subscription, alone
/// (<see cref="Unstalled"/>; <see cref="Ratio"/> = stalled / alone) and beside a third subscription that reads
/// (<see cref="Reading"/>; <see cref="RatioToReading"/> = stalled / reading, the issue's target of at least 0.8), the
/// stalled subscription's limits, the largest queue it was seen to hold, its drops over all rounds, and whether the
/// queue stayed within the limits. (<see cref="Unstalled"/> and <see cref="Ratio"/> keep their names so that
/// <c>scripts/bench-bus-ab.sh</c> reads older builds' reports too.)
/// </summary>
internal sealed record SlowConsumerFigures(
    int FastSubscriptions, int StalledCapacity, long StalledMaxPendingBytes, string StalledFullMode,
    ThroughputFigures Unstalled, ThroughputFigures Stalled, double Ratio,
    long PeakPendingEvents, long PeakPendingBytes, long StalledDropped, bool WithinLimits)
{
    /// <summary>The fast subscriptions beside a third that reads at full speed too.</summary>
    public ThroughputFigures? Reading { get; init; }

    /// <summary>Stalled / <see cref="Reading"/>.</summary>
    public double RatioToReading { get; init; }
}

/// <summary>Where the figures were measured.</summary>
internal sealed record BenchMachine(int ProcessorCount, string Os, string Runtime, string? LoadAverageBefore, string? LoadAverageAfter)
{
    /// <summary>The 1, 5 and 15 minute load averages from /proc/loadavg, or null where there is none.</summary>
    public static string? ReadLoadAverage()
    {
        try
        {
            var fields = File.ReadAllText("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length >= 3 ? string.Join(' ', fields[..3]) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
