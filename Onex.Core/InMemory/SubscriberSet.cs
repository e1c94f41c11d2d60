using Onex.Bus;

namespace Onex.InMemory;

/// <summary>
/// The subscriptions of one logical in-memory bus, shared by its participants. Copy-on-write: publishers read
/// <see cref="Current"/> without a lock; the rare subscribe and unsubscribe replace the array under <see cref="Gate"/>.
/// </summary>
internal sealed class SubscriberSet
{
    private volatile EventChannel[] _current = [];

    /// <summary>Guards every change of the set, and each participant's own bookkeeping.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Topics published on this bus that are known to be valid.</summary>
    public ValidatedTopics ValidTopics { get; } = new();

    /// <summary>A snapshot that never changes once read.</summary>
    public EventChannel[] Current => _current;

    /// <summary>Adds <paramref name="channel"/>; the caller holds <see cref="Gate"/>.</summary>
    public void Add(EventChannel channel) => _current = [.. _current, channel];

    /// <summary>Removes every channel in <paramref name="channels"/>; the caller holds <see cref="Gate"/>.</summary>
    public void Remove(IReadOnlyCollection<EventChannel> channels)
    {
        if (channels.Count == 0) return;
        _current = _current.Where(c => !channels.Contains(c)).ToArray();
    }
}
