using System.Diagnostics;
using System.Threading.Channels;

namespace Onex.Cli.Bench;

/// <summary>
/// One side of a comparison: a bus or a raw transport that carries events from one publisher to one subscriber
/// (throughput) and bounces a ping back as a pong (round trip). Created once per run; measured many times.
/// </summary>
internal interface IBenchContender : IAsyncDisposable
{
    /// <summary>What is measured, in a few words (shown in the report).</summary>
    string Description { get; }

    /// <summary>
    /// Publishes <paramref name="count"/> events and reads them all on the subscriber; the clock runs from the first
    /// publish to the last event read. Events that never arrive (within the quiet period) are reported as lost.
    /// </summary>
    Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken);

    /// <summary>Runs <paramref name="count"/> ping-pongs one after another; returns each one's duration in Stopwatch ticks.</summary>
    Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken);
}

/// <summary>
/// One throughput run: how many events were published, how many read, in how many Stopwatch ticks; how many of the
/// events not read the bus itself counted as dropped; and what the run cost the whole process in CPU time and allocations.
/// </summary>
internal readonly record struct ThroughputSample(int Published, long Received, long ElapsedTicks)
{
    public double Seconds => (double)ElapsedTicks / Stopwatch.Frequency;

    public double EventsPerSecond => ElapsedTicks > 0 ? Received / Seconds : 0;

    public long Lost => Published - Math.Min(Published, Received);

    /// <summary>Events the bus counted as dropped during the run (its participants' <c>Health</c> drop counters); 0 for a raw transport.</summary>
    public long CountedDrops { get; init; }

    /// <summary>Events lost that no drop counter accounts for: a bus must keep this at 0 (no silent loss).</summary>
    public long Unaccounted => Math.Max(0, Lost - CountedDrops);

    /// <summary>CPU time of the whole process (every thread: publisher, transport, reader, GC) during the run.</summary>
    public TimeSpan CpuTime { get; init; }

    /// <summary>Bytes the whole process allocated during the run.</summary>
    public long AllocatedBytes { get; init; }

    /// <summary>CPU time per event read, in microseconds: unlike events/s, it barely depends on how busy the machine is.</summary>
    public double CpuMicrosecondsPerEvent => Received > 0 ? CpuTime.TotalMicroseconds / Received : 0;

    /// <summary>Bytes allocated per event read.</summary>
    public double AllocatedBytesPerEvent => Received > 0 ? (double)AllocatedBytes / Received : 0;
}

/// <summary>Measures what a throughput run costs the process: CPU time of all its threads, and bytes allocated.</summary>
internal static class ProcessCost
{
    /// <summary>Runs <paramref name="measure"/> and adds its CPU time and allocations to the sample it returns.</summary>
    public static async Task<ThroughputSample> MeasureAsync(Func<Task<ThroughputSample>> measure)
    {
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var sample = await measure().ConfigureAwait(false);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        process.Refresh();
        return sample with { CpuTime = process.TotalProcessorTime - cpuBefore, AllocatedBytes = allocated };
    }
}

/// <summary>
/// What a throughput reader has read so far and when it read the latest batch, visible to the thread that watches for
/// a reader gone quiet (lost events) and that computes the elapsed time.
/// </summary>
internal sealed class ReadProgress
{
    private long _received;
    private long _lastTimestamp;

    public long Received => Volatile.Read(ref _received);

    public long LastTimestamp => Volatile.Read(ref _lastTimestamp);

    public void Update(long received, long timestamp)
    {
        Volatile.Write(ref _lastTimestamp, timestamp);
        Volatile.Write(ref _received, received);
    }

    /// <summary>The sample of a run that started at <paramref name="started"/> (a Stopwatch timestamp).</summary>
    public ThroughputSample ToSample(int published, long started) =>
        new(published, Received, Received == 0 ? 0 : LastTimestamp - started);
}

/// <summary>The measuring loops the contenders share, so bus and raw are read and timed the same way.</summary>
internal static class BenchLoops
{
    /// <summary>
    /// Reads up to <paramref name="count"/> items the way a subscriber in Wait mode does: wait for data, then drain
    /// what is there. Records progress after each drained batch (a timestamp per batch, not per item).
    /// </summary>
    public static async Task ReadAsync<T>(ChannelReader<T> reader, int count, ReadProgress progress, CancellationToken cancellationToken)
    {
        long received = 0;
        while (received < count && await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (received < count && reader.TryRead(out _)) received++;
            progress.Update(received, Stopwatch.GetTimestamp());
        }
    }

    /// <summary>
    /// Waits for <paramref name="reader"/> to finish after the publisher is done. When it reads nothing for
    /// <paramref name="quietPeriod"/>, the rest is lost: the reader is stopped through <paramref name="stopReader"/>.
    /// </summary>
    public static async Task AwaitReaderAsync(
        Task reader, ReadProgress progress, TimeSpan quietPeriod, CancellationTokenSource stopReader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var seen = progress.Received;
            var finished = await Task.WhenAny(reader, Task.Delay(quietPeriod, cancellationToken)).ConfigureAwait(false);
            if (finished == reader) break;
            cancellationToken.ThrowIfCancellationRequested();
            if (progress.Received != seen) continue;
            await stopReader.CancelAsync().ConfigureAwait(false);
            break;
        }
        try
        {
            await reader.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopReader.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Stopped above: the events not read by now count as lost.
        }
    }

    /// <summary>
    /// Publishes <paramref name="count"/> times with at most <paramref name="inFlight"/> publishes not yet completed,
    /// awaiting the oldest before starting a new one (1: each publish completes before the next starts).
    /// </summary>
    public static async Task PublishWindowedAsync(int count, int inFlight, Func<ValueTask> publish)
    {
        var window = new ValueTask[Math.Max(1, inFlight)];
        for (var i = 0; i < count; i++)
        {
            var slot = i % window.Length;
            if (i >= window.Length) await window[slot].ConfigureAwait(false);
            window[slot] = publish();
        }
        for (var i = Math.Max(0, count - window.Length); i < count; i++)
            await window[i % window.Length].ConfigureAwait(false);
    }

    /// <summary>A payload of <paramref name="size"/> bytes (a repeating pattern, so nothing compresses it away).</summary>
    public static byte[] Payload(int size)
    {
        var payload = new byte[size];
        for (var i = 0; i < payload.Length; i++) payload[i] = (byte)('a' + i % 26);
        return payload;
    }
}
