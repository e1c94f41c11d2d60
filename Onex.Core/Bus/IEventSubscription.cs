using System.Threading.Channels;
using Onex.Events;

namespace Onex.Bus;

/// <summary>
/// A live subscription. Enumerate it (<c>await foreach</c>) or read <see cref="Reader"/> directly.
/// Disposing it unsubscribes and completes pending reads. For at-least-once backends an event is
/// acknowledged when the reader asks for the next one (or the subscription is disposed after reading it).
/// </summary>
public interface IEventSubscription : IAsyncEnumerable<OnexEvent>, IAsyncDisposable
{
    /// <summary>The pattern this subscription matches.</summary>
    string Pattern { get; }

    /// <summary>The bounded queue of matched events.</summary>
    ChannelReader<OnexEvent> Reader { get; }

    /// <summary>
    /// Events dropped for this subscription because its queue was full, or (Unix sockets) because the host's queue
    /// towards this participant was. Each drop is also counted in the bus's <see cref="IEventBus.Health"/>.
    /// </summary>
    long DroppedCount { get; }

    /// <summary>
    /// Bytes of events queued and not yet read (see <see cref="EventChannel.PendingSize"/>); bounded by
    /// <see cref="SubscriptionOptions.MaxPendingBytes"/> (plus one event, so one larger than the limit is never stuck).
    /// </summary>
    long PendingBytes { get; }
}
