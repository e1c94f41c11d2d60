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

    /// <summary>Events dropped because the queue was full (always 0 in <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> mode).</summary>
    long DroppedCount { get; }
}
