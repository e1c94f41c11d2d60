using MessagePack;

namespace Onex.Events;

/// <summary>
/// The envelope every bus carries. Its wire form is a MessagePack map with the camelCase keys below
/// (<c>contracts/OnexEvent.schema.json</c>); <see cref="OnexEventCodec"/> reads and writes it.
/// </summary>
[MessagePackObject]
[MessagePackFormatter(typeof(OnexEventFormatter))]
public sealed record OnexEvent
{
    /// <summary>The version of this envelope's shape. Decoders reject versions they do not know.</summary>
    public const int CurrentSchemaVersion = 1;

    // Truly read-only: shared by every event created or decoded without headers.
    private static readonly IReadOnlyDictionary<string, string> NoHeaders = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;

    /// <summary>The shared empty headers of events created without any.</summary>
    internal static IReadOnlyDictionary<string, string> EmptyHeaders => NoHeaders;

    /// <summary>Unique id of this event (a UUIDv7 in hex, so ids sort by creation time).</summary>
    [Key("eventId")] public required string EventId { get; init; }

    /// <summary>The concrete topic, dot-separated tokens without wildcards (see <see cref="Bus.Topic"/>).</summary>
    [Key("topic")] public required string Topic { get; init; }

    /// <summary>What the payload is, e.g. <c>registry.change</c> or an application type name.</summary>
    [Key("eventType")] public string EventType { get; init; } = "";

    /// <summary>The node that published the event.</summary>
    [Key("sourceNodeId")] public string SourceNodeId { get; init; } = "";

    /// <summary>Ties events of one conversation or request together; null when there is none.</summary>
    [Key("correlationId")] public string? CorrelationId { get; init; }

    /// <summary>When the event was created, Unix epoch milliseconds.</summary>
    [Key("timestamp")] public long Timestamp { get; init; }

    /// <summary>Envelope schema version; <see cref="CurrentSchemaVersion"/> when created here.</summary>
    [Key("schemaVersion")] public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>Free-form string headers.</summary>
    [Key("headers")] public IReadOnlyDictionary<string, string> Headers { get; init; } = NoHeaders;

    /// <summary>The opaque payload bytes (often MessagePack, but the bus does not care).</summary>
    [Key("payload")] public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>Creates an event with a fresh id and the current time of <paramref name="timeProvider"/>.</summary>
    public static OnexEvent Create(
        string topic,
        ReadOnlyMemory<byte> payload,
        string eventType = "",
        string sourceNodeId = "",
        string? correlationId = null,
        IReadOnlyDictionary<string, string>? headers = null,
        TimeProvider? timeProvider = null)
    {
        var now = (timeProvider ?? TimeProvider.System).GetUtcNow().ToUnixTimeMilliseconds();
        return new()
        {
            EventId = EventIds.New(now),
            Topic = topic,
            EventType = eventType,
            SourceNodeId = sourceNodeId,
            CorrelationId = correlationId,
            Timestamp = now,
            Headers = headers ?? NoHeaders,
            Payload = payload,
        };
    }

    /// <summary>
    /// This event with the publishing participant's identity filled in where the publisher left it blank: an empty
    /// <see cref="SourceNodeId"/> becomes <paramref name="nodeId"/> (when that is not empty) and a zero
    /// <see cref="Timestamp"/> becomes now. Returns the same instance when nothing is missing.
    /// </summary>
    public OnexEvent WithSource(string nodeId, TimeProvider timeProvider)
    {
        var needsNode = SourceNodeId.Length == 0 && nodeId.Length != 0;
        if (!needsNode && Timestamp != 0) return this;
        return this with
        {
            SourceNodeId = needsNode ? nodeId : SourceNodeId,
            Timestamp = Timestamp != 0 ? Timestamp : timeProvider.GetUtcNow().ToUnixTimeMilliseconds(),
        };
    }
}
