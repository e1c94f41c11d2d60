using System.Diagnostics;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Events;

namespace Onex.Cli.Bench;

/// <summary>
/// The slow-consumer case of <c>onex bench bus</c> (issue 11): the subscribing participant holds
/// <see cref="FastSubscriptions"/> subscriptions read at full speed and, depending on the run
/// (<see cref="ThirdSubscription"/>), no third one, a third read at full speed as well, or a third that is never read.
/// The fast ones' throughput beside a stalled third is compared with both unstalled runs in the same rounds: beside a
/// third that reads (the "unstalled": the same subscriptions, none of them stalled) and alone (stricter: what
/// the stalled subscription costs them at all). The stalled subscription's queue is sampled to show that its memory
/// stays within its pending limits (<see cref="StalledOptions"/>: the backend's defaults, as an application that set
/// nothing gets them).
/// </summary>
/// <remarks>
/// All three subscriptions live on one participant, the worst case: on ZeroMQ and joined Unix-socket participants one
/// receive loop feeds them all, so a stalled subscription that paused it would pause the fast ones too. The fast ones
/// queue a whole run in Wait mode (like <see cref="BusContender"/> on ZeroMQ), so what they measure is speed, not loss.
/// A third that reads has the stalled one's settings and competes for the cores like any healthy subscriber.
/// </remarks>
internal sealed class SlowConsumerCase(IEventBus publisher, IEventBus subscriber, byte[] payload, int inFlight, TimeSpan quietPeriod)
{
    /// <summary>Subscriptions read at full speed beside the stalled one.</summary>
    public const int FastSubscriptions = 2;

    private const string Topic = "bench.slow";
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(5);

    /// <summary>The stalled subscription's settings: the backend's defaults (1024 events, 64 MiB, the default full mode).</summary>
    public static SubscriptionOptions StalledOptions => SubscriptionOptions.Default;

    /// <summary>
    /// Publishes <paramref name="count"/> events to the fast subscriptions and to the <paramref name="third"/> one, if
    /// any. The sample's clock runs from the first publish until both fast subscriptions read everything.
    /// </summary>
    public async Task<SlowConsumerSample> MeasureAsync(int count, ThirdSubscription third, CancellationToken cancellationToken)
    {
        var fastOptions = SubscriptionOptions.Default with
        {
            FullMode = BoundedChannelFullMode.Wait, Capacity = Math.Max(SubscriptionOptions.Default.Capacity, count), MaxPendingBytes = long.MaxValue,
        };
        var fast = new IEventSubscription[FastSubscriptions];
        IEventSubscription? other = null;
        try
        {
            for (var i = 0; i < fast.Length; i++)
                fast[i] = await subscriber.SubscribeAsync(Topic, fastOptions, cancellationToken).ConfigureAwait(false);
            if (third != ThirdSubscription.None) other = await subscriber.SubscribeAsync(Topic, StalledOptions, cancellationToken).ConfigureAwait(false);
            var stalled = third == ThirdSubscription.Stalled ? other : null;

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var progress = fast.Select(_ => new ReadProgress()).ToArray();
            var readers = fast.Select((s, i) => Task.Run(() => BenchLoops.ReadAsync(s.Reader, count, progress[i], stop.Token), CancellationToken.None)).ToArray();
            using var stopThird = new CancellationTokenSource();
            var thirdReader = third != ThirdSubscription.Reading ? Task.CompletedTask
                : Task.Run(() => BenchLoops.ReadAsync(other!.Reader, count, new ReadProgress(), stopThird.Token), CancellationToken.None);
            var sampler = stalled is null ? Task.FromResult((0L, 0L)) : SampleAsync(stalled, stopThird.Token);

            var started = Stopwatch.GetTimestamp();
            await BenchLoops.PublishWindowedAsync(count, inFlight,
                () => publisher.PublishAsync(OnexEvent.Create(Topic, payload), cancellationToken)).ConfigureAwait(false);
            for (var i = 0; i < readers.Length; i++)
                await BenchLoops.AwaitReaderAsync(readers[i], progress[i], quietPeriod, stop, cancellationToken).ConfigureAwait(false);
            await stopThird.CancelAsync().ConfigureAwait(false);
            var (peakEvents, peakBytes) = await sampler.ConfigureAwait(false);
            try
            {
                await thirdReader.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopThird.IsCancellationRequested)
            {
                // A reading third that dropped some events is stopped here: only the fast ones are measured.
            }
            if (stalled is not null)
            {
                peakEvents = Math.Max(peakEvents, QueuedEvents(stalled));
                peakBytes = Math.Max(peakBytes, stalled.PendingBytes);
            }

            var received = progress.Min(p => p.Received);
            var elapsed = received == 0 ? 0 : progress.Max(p => p.LastTimestamp) - started;
            return new SlowConsumerSample(new ThroughputSample(count, received, elapsed), peakEvents, peakBytes, stalled?.DroppedCount ?? 0);
        }
        finally
        {
            if (other is not null) await other.DisposeAsync().ConfigureAwait(false);
            foreach (var subscription in fast)
                if (subscription is not null) await subscription.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The stalled subscription's largest queue seen, in events and bytes, sampled until cancelled.</summary>
    private static async Task<(long Events, long Bytes)> SampleAsync(IEventSubscription subscription, CancellationToken cancellationToken)
    {
        long events = 0, bytes = 0;
        using var timer = new PeriodicTimer(SampleInterval);
        try
        {
            do
            {
                events = Math.Max(events, QueuedEvents(subscription));
                bytes = Math.Max(bytes, subscription.PendingBytes);
            }
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // Stopped by the measurement: what was seen so far is the result.
        }
        return (events, bytes);
    }

    private static long QueuedEvents(IEventSubscription subscription) =>
        subscription.Reader.CanCount ? subscription.Reader.Count : 0;
}

/// <summary>What the third subscription beside the fast ones does in a slow-consumer run.</summary>
internal enum ThirdSubscription
{
    /// <summary>There is none: the fast ones alone.</summary>
    None,

    /// <summary>It is read at full speed, like the fast ones (no subscription stalled).</summary>
    Reading,

    /// <summary>It is never read.</summary>
    Stalled,
}

/// <summary>
/// One slow-consumer run: the fast subscriptions' throughput (the slower of the two), and the third subscription's
/// largest queue in events and bytes and its drops (all 0 in a run without a stalled third).
/// </summary>
internal readonly record struct SlowConsumerSample(ThroughputSample Fast, long PeakPendingEvents, long PeakPendingBytes, long Dropped);
