using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>The frame types of the Unix-socket bus protocol (layouts in <see cref="IpcFrames"/>).</summary>
internal enum IpcFrameType : byte
{
    /// <summary>Marks the end of the stream in <see cref="IpcFrame"/>; never on the wire.</summary>
    None = 0x00,
    Hello = 0x01,
    Welcome = 0x02,
    Subscribe = 0x10,
    Subscribed = 0x11,
    Unsubscribe = 0x12,
    /// <summary>Protocol version 1's unnumbered PUBLISH; refused (version 2 numbers every event).</summary>
    PublishV1 = 0x20,
    /// <summary>Protocol version 1's unnumbered EVENT; refused.</summary>
    EventV1 = 0x21,
    Dropped = 0x22,
    Publish = 0x23,
    Event = 0x24,
    Error = 0x7F,
}

/// <summary>One received frame. <see cref="Body"/> is only valid until the next read from the same reader.</summary>
internal readonly record struct IpcFrame(IpcFrameType Type, ReadOnlyMemory<byte> Body)
{
    /// <summary>The peer closed the connection.</summary>
    public bool IsEndOfStream => Type == IpcFrameType.None;
}

/// <summary>
/// Builds and parses frames. Every frame is <c>[u32 length, big-endian][u8 type][body]</c>, where length counts the
/// type byte and the body (1 .. MaxFrameBytes). Integers in bodies are big-endian, strings UTF-8 running to the end
/// of the body. The full protocol is in <c>Onex.Transports/Ipc/README.md</c>.
/// </summary>
internal static class IpcFrames
{
    /// <summary>
    /// The protocol version sent in HELLO and WELCOME. Version 2 put the publisher's id and sequence number in front of
    /// every event (PUBLISH and EVENT got new type bytes, so a version-1 event frame is refused, never misread).
    /// </summary>
    public const ushort ProtocolVersion = 2;

    /// <summary>Bytes in front of the event in a PUBLISH or EVENT body: publisher id (u64) and sequence number (u64).</summary>
    public const int SequenceBytes = 16;

    /// <summary>Bytes before the body: the length field and the type byte.</summary>
    public const int HeaderBytes = 5;

    /// <summary>The smallest MaxFrameBytes a side may declare: room for control frames with a full-length pattern.</summary>
    public const int MinMaxFrameBytes = 1024;

    /// <summary>
    /// Most subscriptions one connection may hold; the host disconnects a participant that goes beyond it
    /// (<c>INVALID_ARGUMENT</c>) and a participant refuses to subscribe past it.
    /// </summary>
    public const int MaxSubscriptionsPerConnection = 4096;

    /// <summary>SUBSCRIBE flag: the subscription waits for room rather than dropping (full mode Wait).</summary>
    public const byte LosslessFlag = 0x01;

    [ThreadStatic] private static ArrayBufferWriter<byte>? t_eventWriter;

    public static byte[] Hello(string nodeId, int maxFrameBytes) => Handshake(IpcFrameType.Hello, nodeId, maxFrameBytes);

    public static byte[] Welcome(string busName, int maxFrameBytes) => Handshake(IpcFrameType.Welcome, busName, maxFrameBytes);

    public static byte[] Subscribe(uint subscriptionId, bool lossless, string pattern)
    {
        var frame = Allocate(IpcFrameType.Subscribe, 5 + Encoding.UTF8.GetByteCount(pattern));
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(HeaderBytes), subscriptionId);
        frame[HeaderBytes + 4] = lossless ? LosslessFlag : (byte)0;
        Encoding.UTF8.GetBytes(pattern, frame.AsSpan(HeaderBytes + 5));
        return frame;
    }

    public static byte[] Subscribed(uint subscriptionId) => WithId(IpcFrameType.Subscribed, subscriptionId);

    public static byte[] Unsubscribe(uint subscriptionId) => WithId(IpcFrameType.Unsubscribe, subscriptionId);

    public static byte[] Dropped(uint subscriptionId, long count)
    {
        var frame = Allocate(IpcFrameType.Dropped, 12);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(HeaderBytes), subscriptionId);
        BinaryPrimitives.WriteInt64BigEndian(frame.AsSpan(HeaderBytes + 4), count);
        return frame;
    }

    public static byte[] Error(string code, string message)
    {
        var codeBytes = Encoding.ASCII.GetBytes(code);
        var messageBytes = Encoding.UTF8.GetBytes(message);
        var frame = Allocate(IpcFrameType.Error, 1 + codeBytes.Length + messageBytes.Length);
        frame[HeaderBytes] = (byte)codeBytes.Length;
        codeBytes.CopyTo(frame.AsSpan(HeaderBytes + 1));
        messageBytes.CopyTo(frame.AsSpan(HeaderBytes + 1 + codeBytes.Length));
        return frame;
    }

    /// <summary>
    /// Encodes <paramref name="evt"/> as a PUBLISH or EVENT frame, with its publisher id and sequence number still
    /// zero: <see cref="IpcEventNumbering.Stamp"/> fills them in when the frame is committed to go out.
    /// </summary>
    /// <exception cref="MessageTooLargeException">The payload or the frame exceeds the limits.</exception>
    public static byte[] EncodeEvent(IpcFrameType type, OnexEvent evt, OnexEventCodec codec, int maxFrameBytes)
    {
        var writer = t_eventWriter ??= new ArrayBufferWriter<byte>(4096);
        writer.ResetWrittenCount();
        writer.GetSpan(HeaderBytes + SequenceBytes)[..(HeaderBytes + SequenceBytes)].Clear();
        writer.Advance(HeaderBytes + SequenceBytes);
        codec.Encode(evt, writer);
        var length = writer.WrittenCount - 4;
        if (length > maxFrameBytes)
            throw new MessageTooLargeException(
                $"Event frame of {length} bytes exceeds the limit of {maxFrameBytes} bytes.",
                new Dictionary<string, string> { ["size"] = length.ToString(), ["limit"] = maxFrameBytes.ToString() });
        var frame = writer.WrittenSpan.ToArray();
        WriteHeader(frame, type);
        // Keep a modest scratch buffer per thread; a one-off large event should not pin megabytes.
        if (writer.Capacity > 256 * 1024) t_eventWriter = null;
        return frame;
    }

    /// <summary>Copies an event body received in a PUBLISH frame into a new EVENT frame for forwarding.</summary>
    public static byte[] EventFromBody(ReadOnlySpan<byte> body)
    {
        var frame = Allocate(IpcFrameType.Event, body.Length);
        body.CopyTo(frame.AsSpan(HeaderBytes));
        return frame;
    }

    /// <summary>Writes the publisher id and sequence number into an event frame built by <see cref="EncodeEvent"/>.</summary>
    public static void WriteSequence(Span<byte> frame, ulong publisherId, ulong sequence)
    {
        BinaryPrimitives.WriteUInt64BigEndian(frame[HeaderBytes..], publisherId);
        BinaryPrimitives.WriteUInt64BigEndian(frame[(HeaderBytes + 8)..], sequence);
    }

    /// <summary>Splits a PUBLISH or EVENT body into the publisher id, the sequence number and the event's codec bytes.</summary>
    /// <exception cref="MalformedMessageException">The body is shorter than the numbers.</exception>
    public static (ulong PublisherId, ulong Sequence, ReadOnlyMemory<byte> Event) ParseEvent(ReadOnlyMemory<byte> body)
    {
        if (body.Length < SequenceBytes)
            throw Malformed($"An event body starts with a publisher id and a sequence number ({SequenceBytes} bytes), got {body.Length} bytes.");
        var span = body.Span;
        return (BinaryPrimitives.ReadUInt64BigEndian(span), BinaryPrimitives.ReadUInt64BigEndian(span[8..]), body[SequenceBytes..]);
    }

    /// <summary>The error for a version-1 event frame arriving on a version-2 connection.</summary>
    public static UnsupportedVersionException VersionOneEventFrame(IpcFrameType type) =>
        new($"Frame type 0x{(byte)type:X2} is protocol version 1's unnumbered event frame; version {ProtocolVersion} sends PUBLISH as 0x{(byte)IpcFrameType.Publish:X2} and EVENT as 0x{(byte)IpcFrameType.Event:X2}, each with a publisher id and a sequence number.",
            new Dictionary<string, string> { ["frameType"] = ((byte)type).ToString(), ["protocolVersion"] = ProtocolVersion.ToString() });

    public static (ushort Version, int MaxFrameBytes, string Name) ParseHandshake(ReadOnlySpan<byte> body)
    {
        if (body.Length < 6) throw Malformed("A HELLO/WELCOME body needs a version and a frame limit (6 bytes).");
        var version = BinaryPrimitives.ReadUInt16BigEndian(body);
        var maxFrame = BinaryPrimitives.ReadUInt32BigEndian(body[2..]);
        return (version, (int)Math.Min(maxFrame, int.MaxValue), DecodeUtf8(body[6..], "name"));
    }

    public static (uint SubscriptionId, bool Lossless, string Pattern) ParseSubscribe(ReadOnlySpan<byte> body)
    {
        if (body.Length < 6) throw Malformed("A SUBSCRIBE body needs an id, flags and a pattern.");
        var id = BinaryPrimitives.ReadUInt32BigEndian(body);
        var lossless = (body[4] & LosslessFlag) != 0;
        return (id, lossless, DecodeUtf8(body[5..], "pattern"));
    }

    public static uint ParseId(ReadOnlySpan<byte> body, IpcFrameType type)
    {
        if (body.Length != 4) throw Malformed($"A {type} body is a 4-byte subscription id, got {body.Length} bytes.");
        return BinaryPrimitives.ReadUInt32BigEndian(body);
    }

    public static (uint SubscriptionId, long Count) ParseDropped(ReadOnlySpan<byte> body)
    {
        if (body.Length != 12) throw Malformed($"A DROPPED body is 12 bytes, got {body.Length}.");
        return (BinaryPrimitives.ReadUInt32BigEndian(body), BinaryPrimitives.ReadInt64BigEndian(body[4..]));
    }

    public static (string Code, string Message) ParseError(ReadOnlySpan<byte> body)
    {
        if (body.Length < 1 || body[0] > body.Length - 1) throw Malformed("An ERROR body needs a code length and a code.");
        var code = Encoding.ASCII.GetString(body.Slice(1, body[0]));
        return (code, DecodeUtf8(body[(1 + body[0])..], "message"));
    }

    /// <summary>Fills in the length field and type byte of a frame whose body is already in place.</summary>
    public static void WriteHeader(Span<byte> frame, IpcFrameType type)
    {
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(frame.Length - 4));
        frame[4] = (byte)type;
    }

    private static byte[] Handshake(IpcFrameType type, string name, int maxFrameBytes)
    {
        var frame = Allocate(type, 6 + Encoding.UTF8.GetByteCount(name));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(HeaderBytes), ProtocolVersion);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(HeaderBytes + 2), (uint)maxFrameBytes);
        Encoding.UTF8.GetBytes(name, frame.AsSpan(HeaderBytes + 6));
        return frame;
    }

    private static byte[] WithId(IpcFrameType type, uint id)
    {
        var frame = Allocate(type, 4);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(HeaderBytes), id);
        return frame;
    }

    private static byte[] Allocate(IpcFrameType type, int bodyLength)
    {
        var frame = new byte[HeaderBytes + bodyLength];
        WriteHeader(frame, type);
        return frame;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string DecodeUtf8(ReadOnlySpan<byte> bytes, string field)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Malformed($"The {field} is not valid UTF-8.");
        }
    }

    private static MalformedMessageException Malformed(string message) => new(message);
}
