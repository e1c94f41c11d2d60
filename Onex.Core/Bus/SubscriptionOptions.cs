using System.Threading.Channels;

namespace Onex.Bus;

/// <summary>
/// Per-subscription queue settings: the slow-consumer limits (like NATS's pending limits, in messages and in bytes)
/// and what happens when either is reached.
/// </summary>
public sealed record SubscriptionOptions
{
    /// <summary>The default byte limit: 64 MiB, NATS's default pending-bytes limit.</summary>
    public const long DefaultMaxPendingBytes = 64L * 1024 * 1024;

    /// <summary>1024 events and 64 MiB, the backend's default full mode (see <see cref="FullMode"/>).</summary>
    public static SubscriptionOptions Default { get; } = new();

    /// <summary>Queue capacity in events (the pending-messages limit).</summary>
    public int Capacity { get; init; } = 1024;

    /// <summary>
    /// Queue capacity in bytes (the pending-bytes limit), counted as <see cref="EventChannel.PendingSize"/> of each queued
    /// event. An event larger than the whole limit is still taken when the queue is empty, so it is never stuck.
    /// </summary>
    public long MaxPendingBytes { get; init; } = DefaultMaxPendingBytes;

    /// <summary>
    /// What happens when the queue is full: <see cref="BoundedChannelFullMode.Wait"/> holds back delivery to this
    /// subscription (see each backend for what it can hold back); <see cref="BoundedChannelFullMode.DropNewest"/> and
    /// <see cref="BoundedChannelFullMode.DropOldest"/> evict a queued event; <see cref="BoundedChannelFullMode.DropWrite"/>
    /// discards the incoming one. Every drop increments <see cref="IEventSubscription.DroppedCount"/> and the bus's
    /// <see cref="EventBusHealth"/>. Null (the default) means the backend's default: <see cref="BoundedChannelFullMode.DropNewest"/>
    /// for the at-most-once backends, as in NATS.Net (a slow consumer loses its newest pending messages and is
    /// reported, the publisher and the other subscribers never wait for it), and <see cref="BoundedChannelFullMode.Wait"/>
    /// for JetStream, whose server keeps what a slow pull consumer has not fetched yet.
    /// </summary>
    public BoundedChannelFullMode? FullMode { get; init; }

    /// <summary>
    /// A durable name for backends that persist consumer position (JetStream): a subscription created again
    /// with the same name resumes where the last one stopped acknowledging. Ignored by the others.
    /// </summary>
    public string? DurableName { get; init; }

    /// <summary>Throws when a setting is out of range.</summary>
    public void Validate()
    {
        if (Capacity < 1)
            throw new ArgumentOutOfRangeException(nameof(Capacity), Capacity, "Capacity must be at least 1.");
        if (MaxPendingBytes < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxPendingBytes), MaxPendingBytes, "MaxPendingBytes must be at least 1.");
        if (DurableName is not null && !Topic.IsValid(DurableName.Replace('.', '_')))
            throw new ArgumentException($"Durable name '{DurableName}' must use letters, digits and -_.", nameof(DurableName));
    }
}
