namespace Onex.RegistryNode.Nodes;

/// <summary>How the registry judges node health.</summary>
public sealed record NodeOptions
{
    /// <summary>The defaults below.</summary>
    public static NodeOptions Default { get; } = new();

    /// <summary>A node that misses this many of its promised heartbeats turns unhealthy.</summary>
    public int MissedHeartbeatsBeforeUnhealthy { get; init; } = 3;

    /// <summary>How long a node stays unhealthy before it is removed with its buses and tools.</summary>
    public TimeSpan UnhealthyGracePeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Shortest heartbeat interval a node may promise.</summary>
    public TimeSpan MinHeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest heartbeat interval a node may promise.</summary>
    public TimeSpan MaxHeartbeatInterval { get; init; } = TimeSpan.FromMinutes(10);
}
