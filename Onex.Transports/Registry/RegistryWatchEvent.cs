using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>What a <see cref="RegistryWatchEvent"/> reports.</summary>
public enum RegistryWatchEventKind
{
    /// <summary>A change of registry state, in sequence order (<see cref="RegistryWatchEvent.Change"/>).</summary>
    Change,

    /// <summary>
    /// The watcher took a snapshot (<see cref="RegistryWatchEvent.Snapshot"/>): at the start, after a gap in the
    /// sequence, or after a new registry epoch. Replace any state built from earlier events with it.
    /// </summary>
    Resynced,

    /// <summary>The registry restarted (a new instance epoch); a <see cref="Resynced"/> follows.</summary>
    EpochChanged,

    /// <summary>The registry announced an orderly shutdown.</summary>
    RegistryStopping,

    /// <summary>Nothing was heard from the registry for three heartbeat periods; the watcher keeps listening.</summary>
    RegistrySilent,

    /// <summary>The registry is heard again after <see cref="RegistrySilent"/>, in the same epoch.</summary>
    RegistryResumed,
}

/// <summary>Why a watcher resynced by snapshot.</summary>
public enum RegistryResyncReason
{
    /// <summary>The first snapshot of a watch.</summary>
    Initial,

    /// <summary>
    /// A change was missed or cannot be applied: a sequence number was skipped, a heartbeat reported a later
    /// sequence, a change of an unknown type arrived, or a snapshot polled while silent was ahead.
    /// </summary>
    Gap,

    /// <summary>The registry restarted with a new epoch.</summary>
    EpochChanged,

    /// <summary>An earlier resync failed (registry unreachable) and was retried.</summary>
    Retried,
}

/// <summary>
/// One item of <see cref="RegistryClient.WatchAsync"/>: a change, a resync with its snapshot, or a status of the
/// registry (stopping, silent, resumed, new epoch). Watchers never skip a change silently: a missed change
/// shows up as <see cref="RegistryWatchEventKind.Resynced"/> with <see cref="RegistryResyncReason.Gap"/>.
/// </summary>
public sealed record RegistryWatchEvent
{
    /// <summary>What this event reports.</summary>
    public required RegistryWatchEventKind Kind { get; init; }

    /// <summary>The registry epoch the watcher follows after this event.</summary>
    public required string Epoch { get; init; }

    /// <summary>The last sequence number applied after this event.</summary>
    public long Sequence { get; init; }

    /// <summary>The change, for <see cref="RegistryWatchEventKind.Change"/>.</summary>
    public RegistryChange? Change { get; init; }

    /// <summary>The snapshot, for <see cref="RegistryWatchEventKind.Resynced"/>.</summary>
    public RegistrySnapshot? Snapshot { get; init; }

    /// <summary>Why, for <see cref="RegistryWatchEventKind.Resynced"/>.</summary>
    public RegistryResyncReason? ResyncReason { get; init; }

    /// <summary>The epoch before, for <see cref="RegistryWatchEventKind.EpochChanged"/>.</summary>
    public string? PreviousEpoch { get; init; }

    /// <summary>A sentence for people, e.g. "expected sequence 7, got 9".</summary>
    public string Detail { get; init; } = "";

    /// <summary>When the watcher observed it.</summary>
    public DateTimeOffset ObservedAt { get; init; }
}
