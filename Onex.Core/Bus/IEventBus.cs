using Onex.Events;

namespace Onex.Bus;

/// <summary>
/// An event bus: publish events to topics, subscribe to topic patterns. Every backend (in-memory,
/// ZeroMQ, Unix sockets, NATS JetStream) implements this one interface and passes one conformance suite.
/// Pattern syntax is in <see cref="Topic"/>. Delivery guarantees differ per backend and are stated in
/// <see cref="Guarantee"/>.
/// </summary>
public interface IEventBus : IAsyncDisposable
{
    /// <summary>The bus's logical name (what the registry lists).</summary>
    string Name { get; }

    /// <summary>The delivery guarantee this backend gives.</summary>
    DeliveryGuarantee Guarantee { get; }

    /// <summary>
    /// This participant's connection state and drop counters per cause, with a notice for each change, so nothing
    /// is lost without the participant being told (see <see cref="EventBusHealth"/>).
    /// </summary>
    EventBusHealth Health { get; }

    /// <summary>
    /// Publishes <paramref name="evt"/> to its topic. Completes when the backend has taken the event
    /// (for JetStream: when the server acknowledged it). Throws <see cref="ObjectDisposedException"/> after disposal.
    /// </summary>
    ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default);

    /// <summary>
    /// Subscribes to <paramref name="pattern"/>. Completes once the subscription is live, so an event
    /// published after this returns is delivered (no slow-joiner gap).
    /// </summary>
    ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default);
}

/// <summary>What a backend promises about delivery.</summary>
public enum DeliveryGuarantee
{
    /// <summary>Each event is delivered at most once; events from one publisher arrive in order; overload may drop.</summary>
    AtMostOnceOrdered,

    /// <summary>Each event is delivered at least once and acknowledged; unacknowledged events are redelivered.</summary>
    AtLeastOnce,
}
