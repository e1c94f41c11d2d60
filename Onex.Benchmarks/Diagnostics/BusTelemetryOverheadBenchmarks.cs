using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Bus;
using Onex.Diagnostics;
using Onex.Events;
using Onex.InMemory;

namespace Onex.Benchmarks.Diagnostics;

/// <summary>What listens to the <c>Onex.Bus</c> source and meter during a run.</summary>
public enum TelemetryListening
{
    /// <summary>Nothing: the hot path only checks whether something listens.</summary>
    Off,

    /// <summary>A <see cref="MeterListener"/> on every <c>Onex.Bus</c> instrument (sums per instrument, as an exporter would).</summary>
    Metrics,

    /// <summary>Metrics, plus an <see cref="ActivityListener"/> recording every span (every event sampled: the worst case).</summary>
    MetricsAndTracing,
}

/// <summary>
/// The cost of listening to the bus's telemetry: publish-to-subscriber throughput of <see cref="InMemoryEventBus"/>
/// (the cheapest backend, so the largest relative overhead; 64-byte payloads, one subscriber reading every event)
/// with nothing listening, with a meter listener, and with a meter and an activity listener, in the same run.
/// One operation is one event. Target: metrics cost at most 10% of throughput.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class BusTelemetryOverheadBenchmarks
{
    private const int EventsPerInvoke = 50_000;
    private const string BenchTopic = "bench.telemetry";

    private OnexEvent _event = null!;
    private InMemoryEventBus _bus = null!;
    private IEventSubscription _subscription = null!;
    private MeterListener? _meters;
    private ActivityListener? _spans;
    private long _measurements;
    private long _stopped;

    /// <summary>What listens.</summary>
    [Params(TelemetryListening.Off, TelemetryListening.Metrics, TelemetryListening.MetricsAndTracing)]
    public TelemetryListening Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _event = OnexEvent.Create(BenchTopic, new byte[64], sourceNodeId: "bench");
        _bus = new InMemoryEventBus(InMemoryEventBusOptions.Default with { Name = "bench" });
        _subscription = _bus.SubscribeAsync(BenchTopic, new SubscriptionOptions { Capacity = 1024, FullMode = BoundedChannelFullMode.Wait })
            .AsTask().GetAwaiter().GetResult();
        if (Listening != TelemetryListening.Off)
        {
            _meters = new MeterListener
            {
                InstrumentPublished = (instrument, listener) =>
                {
                    if (instrument.Meter.Name == OnexBusDiagnostics.Name) listener.EnableMeasurementEvents(instrument);
                },
            };
            _meters.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _measurements, value));
            _meters.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref _measurements));
            _meters.Start();
        }
        if (Listening == TelemetryListening.MetricsAndTracing)
        {
            _spans = new ActivityListener
            {
                ShouldListenTo = source => source.Name == OnexBusDiagnostics.Name,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = _ => Interlocked.Increment(ref _stopped),
            };
            ActivitySource.AddActivityListener(_spans);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _meters?.Dispose();
        _spans?.Dispose();
        _subscription.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _bus.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (Listening != TelemetryListening.Off && Interlocked.Read(ref _measurements) == 0)
            throw new InvalidOperationException("The meter listener recorded nothing: the benchmark did not measure what it claims.");
        if (Listening == TelemetryListening.MetricsAndTracing && Interlocked.Read(ref _stopped) == 0)
            throw new InvalidOperationException("The activity listener saw no span: the benchmark did not measure what it claims.");
    }

    [Benchmark(OperationsPerInvoke = EventsPerInvoke)]
    public async Task PublishAndReceive()
    {
        var reader = ReadAsync(_subscription);
        for (var i = 0; i < EventsPerInvoke; i++)
            await _bus.PublishAsync(_event).ConfigureAwait(false);
        await reader.ConfigureAwait(false);
    }

    private static async Task ReadAsync(IEventSubscription subscription)
    {
        var reader = subscription.Reader;
        var remaining = EventsPerInvoke;
        while (remaining > 0 && await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (remaining > 0 && reader.TryRead(out _)) remaining--;
        }
    }
}
