using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// Numbers every state change (1, 2, 3... within this instance's epoch, no gaps) and hands it to the sink.
/// The Clone pattern's publisher side: a subscriber that misses a number, or sees a new epoch, resyncs by snapshot.
/// </summary>
internal sealed partial class ChangeJournal
{
    private readonly IChangeSink _sink;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly StateChanges? _changes;

    /// <param name="epoch">The epoch (kept across restarts by a durable store).</param>
    /// <param name="sink">Where changes and heartbeats go.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The log.</param>
    /// <param name="changes">Where the sequence's row is marked for the store; none when null.</param>
    /// <param name="sequence">The sequence of the latest change so far (a restart continues it).</param>
    public ChangeJournal(string epoch, IChangeSink sink, TimeProvider time, ILogger logger, StateChanges? changes = null, long sequence = 0)
    {
        Epoch = epoch;
        _sink = sink;
        _time = time;
        _logger = logger;
        _changes = changes;
        Sequence = sequence;
    }

    /// <summary>The stored form of the epoch and sequence.</summary>
    public byte[] Stored => StoredMeta.TextAndLongs(Epoch, Sequence);

    /// <summary>This registry instance's epoch.</summary>
    public string Epoch { get; }

    /// <summary>The sequence number of the latest change; 0 before the first.</summary>
    public long Sequence { get; private set; }

    /// <summary>A fresh epoch: a UUIDv7 in hex, so epochs of later starts sort after earlier ones.</summary>
    public static string NewEpoch(TimeProvider time) => Guid.CreateVersion7(time.GetUtcNow()).ToString("N");

    /// <summary>In cluster mode, this registry's host: written into the node, bus and tool records of changes that name none.</summary>
    public string? HostName { get; set; }

    /// <summary>Records and broadcasts a change with the next sequence number.</summary>
    public RegistryChange Record(string changeType, string key, RegistryEntity? newValue, RegistryEntity? oldValue)
    {
        if (HostName is { } host)
        {
            newValue = StampHost(newValue, host);
            oldValue = StampHost(oldValue, host);
        }
        var change = new RegistryChange
        {
            Epoch = Epoch,
            Sequence = ++Sequence,
            ChangeType = changeType,
            Key = key,
            Timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            NewValue = newValue,
            OldValue = oldValue,
        };
        _changes?.Mark(StoredKind.Meta, StoredMeta.JournalKey);
        try
        {
            _sink.Publish(change);
        }
        catch (Exception ex)
        {
            // The state has changed already; failing the request now would misreport it. A subscriber sees the
            // missing number as a gap (or through the next heartbeat) and resyncs by snapshot.
            LogBroadcastFailed(ex, change.Sequence, change.ChangeType);
        }
        return change;
    }

    /// <summary>
    /// Skips one sequence number, so that a subscriber following the change stream (PROTOCOL.md 10.1) sees a gap at the
    /// next heartbeat or change and resyncs by snapshot. Used when changes were applied to the view but their broadcasts
    /// could not be sent (remote cluster changes read while the store refused writes). Marks the sequence's row, so the
    /// skip is stored with the next commit; it is broadcast only once that commit succeeded.
    /// </summary>
    public void SkipOne()
    {
        Sequence++;
        _changes?.Mark(StoredKind.Meta, StoredMeta.JournalKey);
    }

    /// <summary>Broadcasts a heartbeat carrying the current sequence number.</summary>
    public RegistryHeartbeat Heartbeat(TimeSpan interval, bool stopping = false)
    {
        var heartbeat = new RegistryHeartbeat
        {
            Epoch = Epoch,
            Sequence = Sequence,
            Timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            IntervalMs = (long)interval.TotalMilliseconds,
            Stopping = stopping,
        };
        try
        {
            _sink.Publish(heartbeat);
        }
        catch (Exception ex)
        {
            LogBroadcastFailed(ex, heartbeat.Sequence, "heartbeat");
        }
        return heartbeat;
    }

    private static RegistryEntity? StampHost(RegistryEntity? entity, string host) => entity switch
    {
        { Node: { RegistryHost: null } node } => entity with { Node = node with { RegistryHost = host } },
        { Bus: { RegistryHost: null } bus } => entity with { Bus = bus with { RegistryHost = host } },
        { Tool: { RegistryHost: null } tool } => entity with { Tool = tool with { RegistryHost = host } },
        _ => entity,
    };

    public static RegistryEntity Of(PortLease lease) => new() { Lease = lease };
    public static RegistryEntity Of(NodeRecord node) => new() { Node = node };
    public static RegistryEntity Of(EventBusRecord bus) => new() { Bus = bus };
    public static RegistryEntity Of(ToolContractRecord tool) => new() { Tool = tool };

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not broadcast {ChangeType} (sequence {Sequence}); subscribers will resync")]
    private partial void LogBroadcastFailed(Exception exception, long sequence, string changeType);
}
