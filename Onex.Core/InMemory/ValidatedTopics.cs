using Onex.Bus;

namespace Onex.InMemory;

/// <summary>
/// Remembers topics that already passed <see cref="Topic.EnsureValid"/>, so a publisher that sends to the same few
/// topics pays a string comparison instead of a full validation per event (validation costs more than the channel
/// write it guards). Direct-mapped and lock-free: a collision or a racing overwrite only costs a re-validation.
/// </summary>
internal sealed class ValidatedTopics
{
    private const int Slots = 64;
    private readonly string?[] _slots = new string?[Slots];

    /// <summary>Throws <see cref="ArgumentException"/> when <paramref name="topic"/> is not a concrete topic.</summary>
    public void EnsureValid(string topic)
    {
        // Length and last character spread typical topic names well enough and cost nothing to read.
        var slot = (topic.Length * 31 + (topic.Length == 0 ? 0 : topic[^1])) & (Slots - 1);
        if (string.Equals(Volatile.Read(ref _slots[slot]), topic, StringComparison.Ordinal)) return;
        Topic.EnsureValid(topic);
        Volatile.Write(ref _slots[slot], topic);
    }
}
