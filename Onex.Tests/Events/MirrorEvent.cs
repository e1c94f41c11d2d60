using MessagePack;
using Onex.Events;

namespace Onex.Tests.Events;

/// <summary>
/// <see cref="OnexEvent"/>'s wire shape (the same keys and defaults) without its hand-written formatter, so that
/// MessagePack's own attribute-driven formatter reads and writes it: the reference the hand-written one is tested
/// and benchmarked against. Also compiled into Onex.Benchmarks.
/// </summary>
[MessagePackObject]
public sealed record MirrorEvent
{
    [Key("eventId")] public string? EventId { get; init; }
    [Key("topic")] public string? Topic { get; init; }
    [Key("eventType")] public string? EventType { get; init; } = "";
    [Key("sourceNodeId")] public string? SourceNodeId { get; init; } = "";
    [Key("correlationId")] public string? CorrelationId { get; init; }
    [Key("timestamp")] public long Timestamp { get; init; }
    [Key("schemaVersion")] public int SchemaVersion { get; init; } = OnexEvent.CurrentSchemaVersion;
    [Key("headers")] public IReadOnlyDictionary<string, string>? Headers { get; init; } = new Dictionary<string, string>();
    [Key("payload")] public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>The same fields as <paramref name="evt"/>.</summary>
    public static MirrorEvent From(OnexEvent evt) => new()
    {
        EventId = evt.EventId, Topic = evt.Topic, EventType = evt.EventType, SourceNodeId = evt.SourceNodeId,
        CorrelationId = evt.CorrelationId, Timestamp = evt.Timestamp, SchemaVersion = evt.SchemaVersion, Headers = evt.Headers,
        Payload = evt.Payload,
    };
}
