using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Bus;
using Onex.Events;
using Onex.InMemory;

namespace Onex.Benchmarks.InMemory;

/// <summary>
/// Publish-to-subscriber throughput of <see cref="InMemoryEventBus"/> (64-byte payloads, one publisher, every
/// subscriber reads everything) against the floor it is built on: raw bounded <see cref="Channel{T}"/>s of the same
/// capacity, one per subscriber, written directly. One operation is one event.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class InMemoryThroughputBenchmarks
{
    private const int EventsPerInvoke = 100_000;
    private const int Capacity = 1024;
    private const string BenchTopic = "bench.throughput";

    private OnexEvent _event = null!;
    private Channel<OnexEvent>[] _channels = [];
    private InMemoryEventBus _bus = null!;
    private IEventSubscription[] _subscriptions = [];

    /// <summary>How many subscribers read every event.</summary>
    [Params(1, 4)]
    public int Subscribers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _event = OnexEvent.Create(BenchTopic, new byte[64], sourceNodeId: "bench");
        _channels = Enumerable.Range(0, Subscribers)
            .Select(_ => Channel.CreateBounded<OnexEvent>(new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.Wait }))
            .ToArray();
        _bus = new InMemoryEventBus(InMemoryEventBusOptions.Default with { Name = "bench" });
        var options = new SubscriptionOptions { Capacity = Capacity, FullMode = BoundedChannelFullMode.Wait };
        _subscriptions = Enumerable.Range(0, Subscribers)
            .Select(_ => _bus.SubscribeAsync(BenchTopic, options).AsTask().GetAwaiter().GetResult())
            .ToArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var subscription in _subscriptions) subscription.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _bus.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = EventsPerInvoke)]
    public async Task RawChannel()
    {
        var readers = new Task[_channels.Length];
        for (var s = 0; s < readers.Length; s++)
            readers[s] = ReadAsync(_channels[s].Reader.ReadAllAsync());

        for (var i = 0; i < EventsPerInvoke; i++)
        {
            foreach (var channel in _channels)
            {
                if (!channel.Writer.TryWrite(_event))
                    await channel.Writer.WriteAsync(_event).ConfigureAwait(false);
            }
        }
        await Task.WhenAll(readers).ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = EventsPerInvoke)]
    public async Task InMemoryBus()
    {
        var readers = new Task[_subscriptions.Length];
        for (var s = 0; s < readers.Length; s++)
            readers[s] = ReadAsync(_subscriptions[s]);

        for (var i = 0; i < EventsPerInvoke; i++)
            await _bus.PublishAsync(_event).ConfigureAwait(false);
        await Task.WhenAll(readers).ConfigureAwait(false);
    }

    // Both cases read the same way: an await foreach on its own thread-pool task, stopping after one invoke's worth.
    private static Task ReadAsync(IAsyncEnumerable<OnexEvent> source) => Task.Run(async () =>
    {
        var count = 0;
        await foreach (var _ in source.ConfigureAwait(false))
        {
            if (++count == EventsPerInvoke) break;
        }
    });
}
