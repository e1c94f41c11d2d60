using System.Diagnostics;

namespace Onex.Cli.Bench;

/// <summary>Medians, percentiles and ratios of the bench's samples.</summary>
internal static class BusBenchStatistics
{
    /// <summary>The median (mean of the middle two for an even count); 0 when empty.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>The nearest-rank percentile (<paramref name="fraction"/> 0.5, 0.9, 0.99) of already sorted values.</summary>
    public static double Percentile(double[] sorted, double fraction)
    {
        if (sorted.Length == 0) return 0;
        var rank = (int)Math.Ceiling(fraction * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    /// <summary><paramref name="numerator"/> / <paramref name="denominator"/>, or 0 when the denominator is 0.</summary>
    public static double Ratio(double numerator, double denominator) => denominator > 0 ? numerator / denominator : 0;

    /// <summary>Stopwatch ticks in microseconds.</summary>
    public static double Microseconds(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;

    /// <summary>Round-trip figures over all rounds' samples (in Stopwatch ticks).</summary>
    public static LatencyFigures Latency(IReadOnlyList<long[]> rounds)
    {
        var all = rounds.SelectMany(r => r).Select(Microseconds).Order().ToArray();
        var roundMedians = rounds.Select(r => Median(r.Select(Microseconds).ToArray())).ToArray();
        return new LatencyFigures(Percentile(all, 0.5), Percentile(all, 0.9), Percentile(all, 0.99), all.Length, roundMedians);
    }

    /// <summary>Throughput figures: medians over rounds, lost events summed.</summary>
    public static ThroughputFigures Throughput(IReadOnlyList<ThroughputSample> rounds, int payloadBytes)
    {
        var perSecond = rounds.Select(r => r.EventsPerSecond).ToArray();
        var median = Median(perSecond);
        return new ThroughputFigures(median, median * payloadBytes / 1_000_000, rounds.Sum(r => r.Lost), perSecond)
        {
            CountedDrops = rounds.Sum(r => r.CountedDrops),
            Unaccounted = rounds.Sum(r => r.Unaccounted),
            CpuMicrosecondsPerEvent = Median(rounds.Select(r => r.CpuMicrosecondsPerEvent).ToArray()),
            AllocatedBytesPerEvent = Median(rounds.Select(r => r.AllocatedBytesPerEvent).ToArray()),
        };
    }
}
