using System.Diagnostics;
using Onex.Bus;
using Onex.Events;

namespace Onex.Cli.Bench;

/// <summary>
/// An <see cref="IEventBus"/> under test: <see cref="Publisher"/> publishes and pings, <see cref="Subscriber"/> reads
/// and answers. Every event is a fresh <see cref="OnexEvent"/> (new id, timestamp), as an application would publish
/// it, so creating the envelope counts as bus cost. Subscriptions hold 1024 events in
/// <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> mode (the raw baseline's mode; on a joined
/// ZeroMQ or Unix-socket participant a full Wait-mode subscription drops and counts instead of pausing the participant's
/// one receive loop, so those contenders queue a whole run) and are made fresh for every run, outside the timed part.
/// Every throughput run also reports how many events the participants counted as dropped, so that a loss is either
/// counted (and was reported to the participants) or shows as silent.
/// </summary>
internal sealed class BusContender(
    string description, IEventBus publisher, IEventBus subscriber, byte[] payload, int inFlight, TimeSpan quietPeriod,
    Func<ValueTask>? disposeBuses = null, bool queueWholeRun = false) : IBenchContender
{
    private const string DataTopic = "bench.data";
    private const string PingTopic = "bench.ping";
    private const string PongTopic = "bench.pong";
    private static readonly SubscriptionOptions WaitOptions = SubscriptionOptions.Default with { FullMode = System.Threading.Channels.BoundedChannelFullMode.Wait };

    public string Description { get; } = description;

    /// <summary>The participant that publishes (throughput) and pings (round trip).</summary>
    public IEventBus Publisher { get; } = publisher;

    /// <summary>The participant that reads (throughput) and answers pings with pongs (round trip).</summary>
    public IEventBus Subscriber { get; } = subscriber;

    public async Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken)
    {
        // A backend that cannot hold the publisher back for one subscription (ZeroMQ) gets a queue for the whole run, so a
        // reader that falls behind measures as slower, not as lossy.
        var options = queueWholeRun ? WaitOptions with { Capacity = Math.Max(WaitOptions.Capacity, count), MaxPendingBytes = long.MaxValue } : WaitOptions;
        await using var subscription = await Subscriber.SubscribeAsync(DataTopic, options, cancellationToken).ConfigureAwait(false);
        using var stopReader = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var progress = new ReadProgress();
        var reader = Task.Run(() => BenchLoops.ReadAsync(subscription.Reader, count, progress, stopReader.Token), CancellationToken.None);

        var dropsBefore = CountedDrops();
        var started = Stopwatch.GetTimestamp();
        await BenchLoops.PublishWindowedAsync(count, inFlight,
            () => Publisher.PublishAsync(OnexEvent.Create(DataTopic, payload), cancellationToken)).ConfigureAwait(false);
        await BenchLoops.AwaitReaderAsync(reader, progress, quietPeriod, stopReader, cancellationToken).ConfigureAwait(false);
        // Whatever did not arrive must show in a drop counter: the subscription's, the subscribing participant's (transport
        // gaps) or the publishing participant's (its publish queue). The report separates counted from silent loss.
        return progress.ToSample(count, started) with { CountedDrops = CountedDrops() - dropsBefore };
    }

    public async Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken)
    {
        await using var pongs = await Publisher.SubscribeAsync(PongTopic, WaitOptions, cancellationToken).ConfigureAwait(false);
        await using var pings = await Subscriber.SubscribeAsync(PingTopic, WaitOptions, cancellationToken).ConfigureAwait(false);
        using var responder = BenchResponder.Start(
            stop => AnswerPingsAsync(pings, stop), cancellationToken, out var pingerToken);

        var samples = new long[count];
        try
        {
            var replies = pongs.Reader;
            for (var i = 0; i < count; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await Publisher.PublishAsync(OnexEvent.Create(PingTopic, payload), pingerToken).ConfigureAwait(false);
                await replies.ReadAsync(pingerToken).ConfigureAwait(false);
                samples[i] = Stopwatch.GetTimestamp() - started;
            }
        }
        finally
        {
            await responder.StopAsync().ConfigureAwait(false);
        }
        return samples;
    }

    public ValueTask DisposeAsync() => disposeBuses?.Invoke() ?? default;

    // Drops the two participants have counted so far, every cause (one participant when both are the same bus).
    private long CountedDrops() =>
        ReferenceEquals(Publisher, Subscriber) ? Subscriber.Health.TotalDropped : Publisher.Health.TotalDropped + Subscriber.Health.TotalDropped;

    public override string ToString() => Description;

    private async Task AnswerPingsAsync(IEventSubscription pings, CancellationToken cancellationToken)
    {
        await foreach (var ping in pings.WithCancellation(cancellationToken).ConfigureAwait(false))
            await Subscriber.PublishAsync(OnexEvent.Create(PongTopic, ping.Payload), cancellationToken).ConfigureAwait(false);
    }
}
