using System.Text;

namespace Onex.Transports.Zmq;

/// <summary>
/// The encoded topic frames of recently published topics, so a steady stream on a few topics does not allocate a
/// frame per event. Topics are ASCII by <see cref="Bus.Topic"/>'s rules, so ASCII is their wire encoding.
/// </summary>
/// <remarks>
/// Direct-mapped: a topic has one slot, chosen by its hash, and a new topic evicts whatever held that slot. So any
/// number of distinct topics stays cached as far as <see cref="Slots"/> allows, memory is bounded, and a lookup is
/// one volatile read and one string comparison: no lock, no count kept across slots. Entries are immutable, so a
/// reader racing an eviction sees the old entry or the new one, never a torn one.
/// </remarks>
internal sealed class TopicFrameCache
{
    /// <summary>Number of slots (a power of two).</summary>
    public const int Slots = 1024;

    private readonly Entry?[] _slots = new Entry?[Slots];

    /// <summary>The frame for <paramref name="topic"/>; callers must not modify it.</summary>
    public byte[] Get(string topic)
    {
        ref var slot = ref _slots[string.GetHashCode(topic, StringComparison.Ordinal) & (Slots - 1)];
        var entry = Volatile.Read(ref slot);
        if (entry is not null && string.Equals(entry.Topic, topic, StringComparison.Ordinal)) return entry.Frame;
        var frame = Encoding.ASCII.GetBytes(topic);
        Volatile.Write(ref slot, new Entry(topic, frame));
        return frame;
    }

    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> are frames of the same topic (the same array when cached).</summary>
    public static bool SameTopic(byte[] a, byte[] b) => ReferenceEquals(a, b) || a.AsSpan().SequenceEqual(b);

    private sealed record Entry(string Topic, byte[] Frame);
}
