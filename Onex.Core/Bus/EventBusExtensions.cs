using Onex.Events;

namespace Onex.Bus;

/// <summary>Conveniences over <see cref="IEventBus"/>.</summary>
public static class EventBusExtensions
{
    /// <summary>Publishes <paramref name="payload"/> to <paramref name="topic"/> in a fresh envelope.</summary>
    public static ValueTask PublishAsync(
        this IEventBus bus,
        string topic,
        ReadOnlyMemory<byte> payload,
        string eventType = "",
        CancellationToken cancellationToken = default) =>
        bus.PublishAsync(OnexEvent.Create(topic, payload, eventType), cancellationToken);
}
