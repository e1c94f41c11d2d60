using System.Buffers;
using MessagePack;
using Onex.Errors;

namespace Onex.Events;

/// <summary>
/// Encodes and decodes <see cref="OnexEvent"/> as MessagePack. Decoding either returns a complete,
/// validated event or throws <see cref="MalformedMessageException"/>, <see cref="MessageTooLargeException"/>
/// or <see cref="UnsupportedVersionException"/>; it never returns a partial object.
/// </summary>
public sealed class OnexEventCodec
{
    /// <summary>A codec with <see cref="EventCodecLimits.Default"/>.</summary>
    public static OnexEventCodec Default { get; } = new(EventCodecLimits.Default);

    private static readonly MessagePackSerializerOptions SerializerOptions =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>Creates a codec that enforces <paramref name="limits"/>.</summary>
    public OnexEventCodec(EventCodecLimits limits)
    {
        Limits = limits;
    }

    /// <summary>The limits this codec enforces.</summary>
    public EventCodecLimits Limits { get; }

    /// <summary>Serializes <paramref name="evt"/>; throws <see cref="MessageTooLargeException"/> past the limits.</summary>
    public byte[] Encode(OnexEvent evt)
    {
        CheckPayload(evt.Payload.Length);
        var bytes = MessagePackSerializer.Serialize(evt, SerializerOptions);
        CheckFrame(bytes.Length);
        return bytes;
    }

    /// <summary>
    /// Serializes <paramref name="evt"/> into <paramref name="writer"/>; throws <see cref="MessageTooLargeException"/>
    /// past the limits, in which case nothing was written.
    /// </summary>
    public void Encode(OnexEvent evt, IBufferWriter<byte> writer)
    {
        // Encoding to the side first keeps an oversized frame (large headers) out of the caller's buffer.
        var bytes = Encode(evt);
        writer.Write(bytes);
    }

    /// <summary>Deserializes one event that must occupy all of <paramref name="frame"/>.</summary>
    public OnexEvent Decode(ReadOnlyMemory<byte> frame)
    {
        CheckFrame(frame.Length);
        var evt = DecodeFirst(frame, out var consumed);
        // Framing before content: trailing bytes are reported ahead of what is wrong inside the event.
        if (consumed != frame.Length)
            throw new MalformedMessageException(
                "Trailing bytes after the event.",
                new Dictionary<string, string> { ["trailingBytes"] = (frame.Length - consumed).ToString() });
        Validate(evt);
        return evt!;
    }

    /// <summary>
    /// Deserializes the event at the start of <paramref name="events"/>, a concatenation of encoded events (a batch),
    /// and sets <paramref name="consumed"/> to its length; the next event, if any, starts there. The event itself is
    /// held to <see cref="EventCodecLimits.MaxFrameBytes"/>, the batch is not.
    /// </summary>
    public OnexEvent DecodeNext(ReadOnlyMemory<byte> events, out int consumed)
    {
        var evt = DecodeFirst(events, out consumed);
        CheckFrame(consumed);
        Validate(evt);
        return evt!;
    }

    /// <summary>Reads the map at the start of <paramref name="frame"/>, unvalidated (null for an explicit nil).</summary>
    private static OnexEvent? DecodeFirst(ReadOnlyMemory<byte> frame, out int consumed)
    {
        OnexEvent? evt;
        try
        {
            var reader = new MessagePackReader(frame);
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw new MalformedMessageException("An event must be a MessagePack map.");
            evt = MessagePackSerializer.Deserialize<OnexEvent>(ref reader, SerializerOptions);
            consumed = (int)reader.Consumed;
        }
        catch (MessagePackSerializationException ex)
        {
            throw new MalformedMessageException($"Not a valid event: {Innermost(ex).Message}", null, ex);
        }
        catch (EndOfStreamException ex)
        {
            throw new MalformedMessageException("Truncated event.", null, ex);
        }
        return evt;
    }

    private void Validate(OnexEvent? evt)
    {
        if (evt is null)
            throw new MalformedMessageException("An event must be a map, not nil.");
        if (evt.SchemaVersion != OnexEvent.CurrentSchemaVersion)
            throw new UnsupportedVersionException(
                $"Event schema version {evt.SchemaVersion} is not supported (this side speaks {OnexEvent.CurrentSchemaVersion}).",
                new Dictionary<string, string> { ["schemaVersion"] = evt.SchemaVersion.ToString() });
        if (string.IsNullOrEmpty(evt.EventId))
            throw new MalformedMessageException("Field 'eventId' is missing or empty.", Field("eventId"));
        if (string.IsNullOrEmpty(evt.Topic))
            throw new MalformedMessageException("Field 'topic' is missing or empty.", Field("topic"));
        if (!Bus.Topic.IsValid(evt.Topic))
            throw new MalformedMessageException($"Field 'topic' is not a valid topic: '{evt.Topic}'.", Field("topic"));
        // A map with explicit nil for these keys bypasses the property defaults.
        if (evt.Headers is null || evt.EventType is null || evt.SourceNodeId is null)
            throw new MalformedMessageException("Fields 'headers', 'eventType' and 'sourceNodeId' must not be nil.");
        foreach (var (name, value) in evt.Headers)
            if (value is null)
                throw new MalformedMessageException($"Header '{name}' must be a string, not nil.", Field("headers"));
        CheckPayload(evt.Payload.Length);
    }

    private void CheckPayload(int length)
    {
        if (length > Limits.MaxPayloadBytes)
            throw new MessageTooLargeException(
                $"Payload of {length} bytes exceeds the limit of {Limits.MaxPayloadBytes} bytes.",
                new Dictionary<string, string> { ["size"] = length.ToString(), ["limit"] = Limits.MaxPayloadBytes.ToString() });
    }

    private void CheckFrame(int length)
    {
        if (length > Limits.MaxFrameBytes)
            throw new MessageTooLargeException(
                $"Event frame of {length} bytes exceeds the limit of {Limits.MaxFrameBytes} bytes.",
                new Dictionary<string, string> { ["size"] = length.ToString(), ["limit"] = Limits.MaxFrameBytes.ToString() });
    }

    private static Dictionary<string, string> Field(string name) => new() { ["field"] = name };

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null) ex = ex.InnerException;
        return ex;
    }
}

/// <summary>Size limits for encoded events.</summary>
public sealed record EventCodecLimits
{
    /// <summary>4 MiB payloads, frames up to the payload plus 64 KiB of envelope.</summary>
    public static EventCodecLimits Default { get; } = new();

    /// <summary>Largest payload accepted, in bytes.</summary>
    public int MaxPayloadBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Largest encoded event accepted, in bytes.</summary>
    public int MaxFrameBytes { get; init; } = 4 * 1024 * 1024 + 64 * 1024;
}
