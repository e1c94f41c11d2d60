namespace Onex.InMemory;

/// <summary>Settings of an <see cref="InMemoryEventBus"/>.</summary>
public sealed record InMemoryEventBusOptions
{
    /// <summary>A bus named <c>default</c> with no node id, on the system clock.</summary>
    public static InMemoryEventBusOptions Default { get; } = new();

    /// <summary>The logical bus name (what the registry lists). Must not be empty.</summary>
    public string Name { get; init; } = "default";

    /// <summary>
    /// The node this participant belongs to. When not empty, it is written into
    /// <see cref="Events.OnexEvent.SourceNodeId"/> of events published without one.
    /// </summary>
    public string NodeId { get; init; } = "";

    /// <summary>
    /// The clock that stamps <see cref="Events.OnexEvent.Timestamp"/> on events published without one (timestamp 0);
    /// <see cref="System.TimeProvider.System"/> when null.
    /// </summary>
    public TimeProvider? TimeProvider { get; init; }
}
