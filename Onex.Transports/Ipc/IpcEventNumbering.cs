using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Onex.Transports.Ipc;

/// <summary>
/// A publishing participant's numbering: a random publisher id and, per topic, the next sequence number (from 1).
/// Numbers go per topic, not per publisher, because the broker routes only the topics a subscriber asked for: a
/// subscriber sees every event of a topic it reads, so a jump there is a loss, never a filtered event (as on ZeroMQ).
/// A frame is numbered when it is committed to go out (accepted into the outbound queue), so an event refused to its
/// publisher never leaves a hole. The table is bounded; past <see cref="MaxTopics"/> it starts over, which a
/// subscriber reads as a publisher starting over (no loss inferred).
/// </summary>
internal sealed class IpcEventNumbering
{
    /// <summary>Topics numbered at once before the table starts over.</summary>
    public const int MaxTopics = 65_536;

    private readonly Dictionary<string, ulong> _last = new(StringComparer.Ordinal);

    /// <summary>A random non-zero id, new for every participant (a restarted process is a new publisher).</summary>
    public ulong PublisherId { get; } = NewPublisherId();

    /// <summary>Writes this publisher's id and the topic's next sequence number into <paramref name="frame"/>.</summary>
    public void Stamp(byte[] frame, string topic)
    {
        ulong sequence;
        lock (_last)
        {
            if (_last.Count >= MaxTopics && !_last.ContainsKey(topic)) _last.Clear();
            ref var last = ref CollectionsMarshal.GetValueRefOrAddDefault(_last, topic, out _);
            sequence = ++last;
        }
        IpcFrames.WriteSequence(frame, PublisherId, sequence);
    }

    private static ulong NewPublisherId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id == 0);
        return id;
    }
}

/// <summary>
/// A subscribing participant's check of the numbers in the events it receives: per (publisher, topic) the number it
/// expects next; a jump is events that were published and never arrived (sent while this participant or the publisher
/// was reconnecting, routed while this participant had not re-sent its subscriptions, or lost with a dead host).
/// Used by the one thread that reads the connection. The table is bounded like the publishers' (past
/// <see cref="IpcEventNumbering.MaxTopics"/> entries it starts over).
/// </summary>
internal sealed class IpcGapCheck
{
    private readonly Dictionary<(ulong Publisher, string Topic), ulong> _expected = [];
    private volatile bool _forget;

    /// <summary>Keys tracked now (for tests).</summary>
    public int Count => _expected.Count;

    /// <summary>
    /// From any thread: forget every expectation before the next check. Called when a subscription is added (events of
    /// its topics that arrive next may follow a stretch nobody here subscribed to, which is no loss).
    /// </summary>
    public void ForgetAll() => _forget = true;

    /// <summary>
    /// On the reading thread: forget at once. Called at a DROPPED frame, which the host sends in order, where it dropped:
    /// the jump those drops leave was counted from the frame, so it must not be counted again.
    /// </summary>
    public void ForgetNow()
    {
        _forget = false;
        _expected.Clear();
    }

    /// <summary>
    /// Records <paramref name="sequence"/> of <paramref name="publisherId"/> on <paramref name="topic"/>; returns how
    /// many of its events on the topic were skipped since the last one seen (0 for the first one, or a publisher that
    /// started over: a number at or below one already seen).
    /// </summary>
    public long Check(ulong publisherId, string topic, ulong sequence)
    {
        if (_forget) ForgetNow();
        if (_expected.Count >= IpcEventNumbering.MaxTopics && !_expected.ContainsKey((publisherId, topic))) _expected.Clear();
        ref var expected = ref CollectionsMarshal.GetValueRefOrAddDefault(_expected, (publisherId, topic), out var seen);
        var lost = seen && sequence > expected ? (long)Math.Min(sequence - expected, long.MaxValue) : 0;
        expected = sequence + 1;
        return lost;
    }
}
