using System.Text;

namespace Onex.Transports.Zmq;

/// <summary>
/// Control messages that share the event sockets: <c>[control topic][empty]</c>. A control topic starts with
/// <c>$</c>, which no event topic may contain (<see cref="Bus.Topic"/>), so no subscription filter except the empty
/// one (patterns such as <c>&gt;</c>) lets them through, and the receive loop recognises and skips them.
/// </summary>
internal static class ZmqControl
{
    /// <summary>The first byte of every control topic.</summary>
    public const byte Marker = (byte)'$';

    /// <summary>
    /// A probe topic unique to one handshake of one subscriber. It ends with a second <c>$</c> so that no probe topic is
    /// a prefix of another (<c>...1$</c> vs <c>...10$</c>): ZeroMQ filters by prefix, and a probe must only be let
    /// through by its own subscription.
    /// </summary>
    public static byte[] ProbeTopic(string subscriberId, long sequence) =>
        Encoding.ASCII.GetBytes($"$onex.probe.{subscriberId}.{sequence}$");

    /// <summary>Size of the sequence frame a bus participant's messages end with: publisher id, first sequence, event count.</summary>
    public const int SequenceFrameBytes = 20;

    /// <summary>
    /// The third frame of a bus participant's message: a random id of the publishing participant (8 bytes), the
    /// sequence number of the message's first event among that participant's events on the topic (8 bytes, counting
    /// from 1), and how many events the message holds (4 bytes), all big-endian. A receiver that sees the sequence
    /// jump knows how many events of the topic it lost (a high-water mark, a connection that was down).
    /// </summary>
    public static byte[] SequenceFrame(long publisherId, long firstSequence, int events)
    {
        var frame = new byte[SequenceFrameBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(frame, publisherId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(frame.AsSpan(8), firstSequence);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(16), events);
        return frame;
    }
}
