using System.Threading.Channels;

namespace Onex.Bus;

/// <summary>Per-subscription queue settings.</summary>
public sealed record SubscriptionOptions
{
    /// <summary>1024 events, publishers wait when full.</summary>
    public static SubscriptionOptions Default { get; } = new();

    /// <summary>Queue capacity in events.</summary>
    public int Capacity { get; init; } = 1024;

    /// <summary>
    /// What happens when the queue is full: <see cref="BoundedChannelFullMode.Wait"/> makes the publisher wait
    /// (in-memory) or the transport apply backpressure; <see cref="BoundedChannelFullMode.DropNewest"/> and
    /// <see cref="BoundedChannelFullMode.DropOldest"/> evict a queued event; <see cref="BoundedChannelFullMode.DropWrite"/>
    /// discards the incoming one. Every drop increments <see cref="IEventSubscription.DroppedCount"/>.
    /// </summary>
    public BoundedChannelFullMode FullMode { get; init; } = BoundedChannelFullMode.Wait;

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
        if (DurableName is not null && !Topic.IsValid(DurableName.Replace('.', '_')))
            throw new ArgumentException($"Durable name '{DurableName}' must use letters, digits and -_.", nameof(DurableName));
    }
}
