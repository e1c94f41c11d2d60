namespace Onex.RegistryNode.Watches;

/// <summary>
/// Bounds of the change streams opened with <c>Watch</c> (PROTOCOL.md 16.7): what watchers can make the registry hold.
/// </summary>
internal sealed record WatchOptions
{
    /// <summary>The reference registry's values.</summary>
    public static WatchOptions Default { get; } = new();

    /// <summary>Open watches of one peer (one DEALER connection).</summary>
    public int MaxPerPeer { get; init; } = 16;

    /// <summary>Open watches of all peers together.</summary>
    public int MaxTotal { get; init; } = 1024;

    /// <summary>Credit a watch may hold (messages the registry may send it without hearing from it).</summary>
    public int MaxCredit { get; init; } = 10_000;

    /// <summary>Messages held for one watch that has no credit left; one more and it fell behind.</summary>
    public int MaxQueuedEvents { get; init; } = 4096;

    /// <summary>Bytes of changes held for one watch (each change counted at its encoded size).</summary>
    public long MaxQueuedBytesPerWatch { get; init; } = 8L * 1024 * 1024;

    /// <summary>Bytes of changes held for all watches together.</summary>
    public long MaxQueuedBytesTotal { get; init; } = 64L * 1024 * 1024;

    /// <summary>Recent changes kept to replay from (<c>startSequence</c>).</summary>
    public int HistoryChanges { get; init; } = 4096;

    /// <summary>Bytes of recent changes kept to replay from.</summary>
    public long HistoryBytes { get; init; } = 16L * 1024 * 1024;

    /// <summary>A watch whose client sends nothing (no credit, no keep-alive) for this long ends (WATCH_EXPIRED).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// <c>WatchCredit</c> messages per second (bursts of one second's worth) one connection may send for its open
    /// watches without counting against its tenant's <c>requestsPerSecond</c>; beyond that each counts as a request.
    /// </summary>
    public int UnchargedCreditsPerSecond { get; init; } = 64;
}
