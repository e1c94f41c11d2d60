using System.Collections.Concurrent;
using System.Text;

namespace Onex.Transports.Zmq;

/// <summary>
/// The encoded topic frames of recently published topics, so a steady stream on a few topics does not allocate a
/// frame per event. Bounded: past <see cref="MaxEntries"/> distinct topics, frames are encoded fresh each time.
/// Topics are ASCII by <see cref="Bus.Topic"/>'s rules, so ASCII is their wire encoding.
/// </summary>
internal sealed class TopicFrameCache
{
    public const int MaxEntries = 1024;

    private readonly ConcurrentDictionary<string, byte[]> _frames = new(StringComparer.Ordinal);

    /// <summary>The frame for <paramref name="topic"/>; callers must not modify it.</summary>
    public byte[] Get(string topic)
    {
        if (_frames.TryGetValue(topic, out var frame)) return frame;
        frame = Encoding.ASCII.GetBytes(topic);
        if (_frames.Count < MaxEntries) _frames.TryAdd(topic, frame);
        return frame;
    }
}
