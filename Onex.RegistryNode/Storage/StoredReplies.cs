using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using MessagePack;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// The stored form of one commit's kept replies (one <c>replies</c> row). Format 3 writes
/// <c>[3, firstStoredAt, [entry, ...]]</c>, an entry being
/// <c>[client, requestId, messageType, bodyHash, errorCode or nil, storedAt - firstStoredAt, reply]</c>:
/// <list type="bullet">
/// <item>client ids and message types are written in full the first time a row uses them and as their index (in order
/// of first use) after that, so a row of one client's requests names the client once;</item>
/// <item>the request body is kept as its 16-byte XxHash128 (<see cref="ReplyCache.HashOf"/>), all a retry is checked against;</item>
/// <item>a reply in the envelope form every reply has (PROTOCOL.md 2: protocolVersion, messageType, requestId, clientId,
/// body, in that order, echoing the request's id) is kept as <c>[protocolVersion, messageType, clientId, body]</c>,
/// and written back in that form when read; any other reply is kept whole, as bytes.</item>
/// </list>
/// Format 2 wrote <c>[[clientId, requestId, messageType, body, reply, errorCode, storedAt], ...]</c>; its rows are
/// still read (the body hashed then), so a store written by format 2 keeps its replies.
/// </summary>
internal sealed class StoredReplies
{
    private const int Format = 3;

    // The strings of the row being written, by first use; cleared per row.
    private readonly Dictionary<string, int> _strings = new(StringComparer.Ordinal);
    private readonly byte[] _hash = new byte[ReplyCache.HashBytes];

    /// <summary>Writes <paramref name="replies"/> (at least one) as one row's value.</summary>
    public void Encode(IReadOnlyList<StoredReply> replies, IBufferWriter<byte> buffer)
    {
        _strings.Clear();
        var first = replies[0].StoredAt;
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(3);
        writer.Write(Format);
        writer.Write(first);
        writer.WriteArrayHeader(replies.Count);
        foreach (var reply in replies)
        {
            writer.WriteArrayHeader(7);
            WriteString(ref writer, reply.ClientId);
            writer.Write(reply.RequestId);
            WriteString(ref writer, reply.MessageType);
            BinaryPrimitives.WriteUInt128LittleEndian(_hash, reply.BodyHash);
            writer.Write(_hash);
            writer.Write(reply.ErrorCode);
            writer.Write(reply.StoredAt - first);
            if (ReadEnvelope(reply.Reply, reply.RequestId) is { } envelope)
            {
                writer.WriteArrayHeader(4);
                writer.Write(envelope.Version);
                WriteString(ref writer, reply.Reply.AsSpan(envelope.MessageType.Start, envelope.MessageType.Length));
                WriteString(ref writer, reply.Reply.AsSpan(envelope.ClientId.Start, envelope.ClientId.Length));
                writer.WriteRaw(reply.Reply.AsSpan(envelope.BodyStart));
            }
            else writer.Write(reply.Reply);
        }
        writer.Flush();
    }

    /// <summary>Reads one row's value, of format 3 or 2. Throws <see cref="RegistryStoreException"/> when it is neither.</summary>
    public static List<StoredReply> Decode(byte[] blob)
    {
        try
        {
            return DecodeRow(blob);
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException)
        {
            throw new RegistryStoreException(
                $"A stored reply row cannot be read ({ex.Message.TrimEnd('.')}): the store is damaged. Restore a backup, or move the data directory away to start empty.", ex);
        }
    }

    private static List<StoredReply> DecodeRow(byte[] blob)
    {
        var reader = new MessagePackReader(blob);
        var count = reader.ReadArrayHeader();
        if (count == 0) return [];
        if (reader.NextMessagePackType != MessagePackType.Integer) return DecodeFormat2(ref reader, count);
        var format = reader.ReadInt32();
        if (count != 3 || format != Format) throw new MessagePackSerializationException($"Unknown stored reply form {format}.");
        var first = reader.ReadInt64();
        count = reader.ReadArrayHeader();
        var replies = new List<StoredReply>(count);
        var strings = new List<string>();
        for (var i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 7) throw new MessagePackSerializationException("A stored reply is not 7 fields.");
            var clientId = ReadString(ref reader, strings);
            var requestId = reader.ReadString()!;
            var messageType = ReadString(ref reader, strings);
            var hash = reader.ReadBytes()!.Value;
            if (hash.Length != ReplyCache.HashBytes) throw new MessagePackSerializationException("A stored body hash is not 16 bytes.");
            var errorCode = reader.ReadString();
            var storedAt = first + reader.ReadInt64();
            byte[] reply;
            if (reader.NextMessagePackType == MessagePackType.Binary) reply = reader.ReadBytes()!.Value.ToArray();
            else
            {
                if (reader.ReadArrayHeader() != 4) throw new MessagePackSerializationException("A stored reply envelope is not 4 fields.");
                var version = reader.ReadInt32();
                var type = ReadString(ref reader, strings);
                var client = ReadString(ref reader, strings);
                reply = WriteEnvelope(version, type, requestId, client, reader.ReadRaw());
            }
            replies.Add(new StoredReply(clientId, requestId, messageType, BinaryPrimitives.ReadUInt128LittleEndian(hash.ToArray()), reply, errorCode, storedAt));
        }
        if (!reader.End) throw new MessagePackSerializationException("A stored reply row has bytes past its replies.");
        return replies;
    }

    private static List<StoredReply> DecodeFormat2(ref MessagePackReader reader, int count)
    {
        var replies = new List<StoredReply>(count);
        for (var i = 0; i < count; i++)
        {
            reader.ReadArrayHeader();
            var clientId = reader.ReadString()!;
            var requestId = reader.ReadString()!;
            var messageType = reader.ReadString()!;
            var body = reader.ReadBytes()!.Value;
            var hash = body.IsSingleSegment ? ReplyCache.HashOf(body.FirstSpan) : ReplyCache.HashOf(body.ToArray());
            replies.Add(new StoredReply(clientId, requestId, messageType, hash, reader.ReadBytes()!.Value.ToArray(), reader.ReadString(), reader.ReadInt64()));
        }
        return replies;
    }

    private void WriteString(ref MessagePackWriter writer, string value)
    {
        if (_strings.TryGetValue(value, out var index))
        {
            writer.Write(index);
            return;
        }
        _strings.Add(value, _strings.Count);
        writer.Write(value);
    }

    // A string of the reply as UTF-8: looked up without making a string, made once per row when new.
    private void WriteString(ref MessagePackWriter writer, ReadOnlySpan<byte> utf8)
    {
        var chars = utf8.Length <= 1024 ? stackalloc char[utf8.Length] : new char[utf8.Length];
        chars = chars[..Encoding.UTF8.GetChars(utf8, chars)];
        if (_strings.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(chars, out var index))
        {
            writer.Write(index);
            return;
        }
        _strings.Add(new string(chars), _strings.Count);
        writer.WriteString(utf8);
    }

    private static string ReadString(ref MessagePackReader reader, List<string> strings)
    {
        if (reader.NextMessagePackType == MessagePackType.Integer)
        {
            var index = reader.ReadInt32();
            if ((uint)index >= (uint)strings.Count) throw new MessagePackSerializationException($"A stored reply names string {index} of {strings.Count}.");
            return strings[index];
        }
        var value = reader.ReadString() ?? throw new MessagePackSerializationException("A stored reply has a nil string.");
        strings.Add(value);
        return value;
    }

    private readonly record struct Envelope(int Version, Range MessageType, Range ClientId, int BodyStart);

    private readonly record struct Range(int Start, int Length);

    /// <summary>The parts of a reply in the usual envelope form echoing <paramref name="requestId"/>; null for any other.</summary>
    private static Envelope? ReadEnvelope(byte[] reply, string requestId)
    {
        try
        {
            var reader = new MessagePackReader(reply);
            if (reader.NextMessagePackType != MessagePackType.Map || reader.ReadMapHeader() != 5
                || !IsString(ref reader, "protocolVersion"u8) || reader.NextMessagePackType != MessagePackType.Integer) return null;
            var version = reader.ReadInt32();
            if (!IsString(ref reader, "messageType"u8) || ReadRange(ref reader) is not { } messageType) return null;
            Span<byte> id = stackalloc byte[Encoding.UTF8.GetMaxByteCount(requestId.Length)];
            if (!IsString(ref reader, "requestId"u8) || !IsString(ref reader, id[..Encoding.UTF8.GetBytes(requestId, id)])) return null;
            if (!IsString(ref reader, "clientId"u8) || ReadRange(ref reader) is not { } clientId) return null;
            if (!IsString(ref reader, "body"u8)) return null;
            var bodyStart = (int)reader.Consumed;
            reader.Skip();
            return reader.End ? new Envelope(version, messageType, clientId, bodyStart) : null;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException)
        {
            return null; // not an envelope: kept whole
        }
    }

    private static bool IsString(ref MessagePackReader reader, scoped ReadOnlySpan<byte> expected) =>
        reader.NextMessagePackType == MessagePackType.String && reader.ReadStringSequence() is { IsSingleSegment: true } value && value.FirstSpan.SequenceEqual(expected);

    // The place of the string value at the reader, in the reply's bytes (one segment: the reply is one array).
    private static Range? ReadRange(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType != MessagePackType.String || reader.ReadStringSequence() is not { IsSingleSegment: true } value) return null;
        return new Range((int)reader.Consumed - (int)value.Length, (int)value.Length);
    }

    /// <summary>A reply in the envelope form <see cref="ReadEnvelope"/> reads.</summary>
    private static byte[] WriteEnvelope(int version, string messageType, string requestId, string clientId, ReadOnlySequence<byte> body)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + (int)body.Length + requestId.Length + clientId.Length + messageType.Length);
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(5);
        writer.Write("protocolVersion");
        writer.Write(version);
        writer.Write("messageType");
        writer.Write(messageType);
        writer.Write("requestId");
        writer.Write(requestId);
        writer.Write("clientId");
        writer.Write(clientId);
        writer.Write("body");
        writer.WriteRaw(body);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
