using MessagePack;

namespace Onex.Protocol;

/// <summary>
/// Opens a change stream to the sending DEALER over the request socket (PROTOCOL.md 16.7): changes whose topic starts
/// with <see cref="Prefix"/>, filtered to the caller's tenant, and heartbeats, as <see cref="WatchEvent"/> messages
/// carrying this request's id, within the credit the client grants. Reply: a <see cref="WatchEvent"/> of kind
/// <see cref="WatchEventKinds.Started"/>.
/// </summary>
[MessagePackObject]
public sealed record Watch
{
    /// <summary>Topic prefix (<c>registry.</c> + change type), e.g. <c>registry.bus.</c>; null or empty: every change.</summary>
    [Key("prefix")] public string? Prefix { get; init; }
    /// <summary>Replay from this sequence (at least 1) out of the registry's recent history; null: changes from now on.</summary>
    [Key("startSequence")] public long? StartSequence { get; init; }
    /// <summary>The epoch <see cref="StartSequence"/> belongs to; another epoch than the registry's is RESYNC_REQUIRED. Null: the current one.</summary>
    [Key("epoch")] public string? Epoch { get; init; }
    /// <summary>Stream messages the registry may send before the next <see cref="WatchCredit"/> (0 to 10,000).</summary>
    [Key("credit")] public int Credit { get; init; }
}

/// <summary>
/// Grants a watch more credit (stream messages the registry may send) and keeps it alive: a watch not heard from for
/// its idle timeout ends. Reply: <see cref="Ack"/>; NOT_FOUND when the watch has ended.
/// </summary>
[MessagePackObject]
public sealed record WatchCredit
{
    /// <summary>The watch: the request id of its <see cref="Watch"/> request.</summary>
    [Key("watchId")] public required string WatchId { get; init; }
    /// <summary>Messages added to the watch's credit (0 to 10,000; 0 only keeps the watch alive). Credit held is capped at 10,000.</summary>
    [Key("credit")] public int Credit { get; init; }
}

/// <summary>Ends a watch. Reply: <see cref="Ack"/> (also for a watch that has already ended).</summary>
[MessagePackObject]
public sealed record WatchCancel
{
    /// <summary>The watch: the request id of its <see cref="Watch"/> request.</summary>
    [Key("watchId")] public required string WatchId { get; init; }
}

/// <summary>
/// One message of a watch's stream, sent to the watching DEALER with the <see cref="Watch"/> request's ids. Every
/// message says which sequence the stream had covered before it (<see cref="Previous"/>) and covers after it
/// (<see cref="Sequence"/>): the changes between them were not for this watch (another tenant's, or outside its
/// prefix), so a client that holds everything up to <see cref="Previous"/> holds everything up to <see cref="Sequence"/>.
/// </summary>
[MessagePackObject]
public sealed record WatchEvent
{
    /// <summary>The watch: the request id of its <see cref="Watch"/> request.</summary>
    [Key("watchId")] public required string WatchId { get; init; }
    /// <summary>What this message is (see <see cref="WatchEventKinds"/>).</summary>
    [Key("kind")] public required string Kind { get; init; }
    /// <summary>The registry's epoch.</summary>
    [Key("epoch")] public required string Epoch { get; init; }
    /// <summary>The sequence the stream covered before this message.</summary>
    [Key("previous")] public long Previous { get; init; }
    /// <summary>The sequence the stream covers with this message.</summary>
    [Key("sequence")] public long Sequence { get; init; }
    /// <summary>The change, for <see cref="WatchEventKinds.Change"/>.</summary>
    [Key("change")] public RegistryChange? Change { get; init; }
    /// <summary>The heartbeat, for <see cref="WatchEventKinds.Heartbeat"/>.</summary>
    [Key("heartbeat")] public RegistryHeartbeat? Heartbeat { get; init; }
    /// <summary>Why the stream ended, for <see cref="WatchEventKinds.Ended"/>: a catalogue code (WATCH_FELL_BEHIND, WATCH_EXPIRED).</summary>
    [Key("code")] public string? Code { get; init; }
    /// <summary>A sentence for people, for <see cref="WatchEventKinds.Ended"/>.</summary>
    [Key("message")] public string? Message { get; init; }
    /// <summary>For <see cref="WatchEventKinds.Started"/>: the watch ends when no request of its client arrives for this long (ms).</summary>
    [Key("idleTimeoutMs")] public long IdleTimeoutMs { get; init; }
}

/// <summary>The kinds of <see cref="WatchEvent"/>.</summary>
public static class WatchEventKinds
{
    /// <summary>The reply to <see cref="Watch"/>: the stream is open; it covers up to <see cref="WatchEvent.Sequence"/>. Takes no credit.</summary>
    public const string Started = "started";
    /// <summary>A change for this watch. Takes one credit.</summary>
    public const string Change = "change";
    /// <summary>A registry heartbeat. Takes one credit; while credit is short, heartbeats are merged into one.</summary>
    public const string Heartbeat = "heartbeat";
    /// <summary>The stream ended (<see cref="WatchEvent.Code"/> says why); nothing follows. Takes no credit.</summary>
    public const string Ended = "ended";
}
