using Microsoft.Extensions.Logging;

namespace Onex.Transports.Registry;

/// <summary>Log messages of the registry client, source-generated.</summary>
internal static partial class RegistryClientLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Send queue to {Endpoint} is full; a request frame was dropped and its attempt will time out")]
    public static partial void SendQueueFull(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Undecodable reply from {Endpoint}: {Code} {Reason}")]
    public static partial void UndecodableReply(ILogger logger, string endpoint, string code, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Debug, Message = "Reply {RequestId} ({MessageType}) matched no request in flight (late reply to a request already answered or given up)")]
    public static partial void UnmatchedReply(ILogger logger, string requestId, string messageType);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Undecodable broadcast from {Endpoint}: {Reason}")]
    public static partial void UndecodableBroadcast(ILogger logger, string endpoint, string reason);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Debug, Message = "Resending {MessageType} {RequestId} (attempt {Attempt}) under the same request id")]
    public static partial void Retrying(ILogger logger, string messageType, string requestId, int attempt);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Node {NodeId} announced to registry {Endpoint} (epoch {Epoch})")]
    public static partial void Announced(ILogger logger, string nodeId, string endpoint, string? epoch);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Heartbeat of node {NodeId} failed: {Code} {Reason}")]
    public static partial void HeartbeatFailed(ILogger logger, string nodeId, string code, string reason);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Information, Message = "Re-asserting node {NodeId} with the registry: {Reason}")]
    public static partial void Reasserting(ILogger logger, string nodeId, string reason);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Information, Message = "Re-asserted node {NodeId} in epoch {Epoch}: {Buses} buses, {Tools} tools, {Leases} leases reclaimed, {Lost} lost")]
    public static partial void Reasserted(ILogger logger, string nodeId, string epoch, int buses, int tools, int leases, int lost);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Re-assertion of node {NodeId} failed: {Code} {Reason}")]
    public static partial void ReassertFailed(ILogger logger, string nodeId, string code, string reason);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Debug, Message = "Renewed lease {LeaseId} on port {Port} until {ExpiresAt}")]
    public static partial void LeaseRenewed(ILogger logger, string leaseId, int port, long expiresAt);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "Renewal of lease {LeaseId} on port {Port} failed, will retry: {Code} {Reason}")]
    public static partial void LeaseRenewalFailed(ILogger logger, string leaseId, int port, string code, string reason);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Warning, Message = "Lease {LeaseId} on port {Port} is lost: {Reason}")]
    public static partial void LeaseLost(ILogger logger, string leaseId, int port, string reason);

    [LoggerMessage(EventId = 3014, Level = LogLevel.Warning, Message = "Release of lease {LeaseId} on port {Port} failed: {Code} {Reason}")]
    public static partial void LeaseReleaseFailed(ILogger logger, string leaseId, int port, string code, string reason);

    [LoggerMessage(EventId = 3015, Level = LogLevel.Information, Message = "Registry epoch changed from {OldEpoch} to {NewEpoch}")]
    public static partial void EpochChanged(ILogger logger, string? oldEpoch, string newEpoch);

    [LoggerMessage(EventId = 3022, Level = LogLevel.Warning,
        Message = "Broadcasts on {PubEndpoint} come from registry epoch {PubEpoch}, but {Endpoint} answers in epoch {RouterEpoch}: the two endpoints belong to different registries; ignoring that epoch")]
    public static partial void ForeignBroadcasts(ILogger logger, string pubEndpoint, string pubEpoch, string endpoint, string routerEpoch);

    [LoggerMessage(EventId = 3016, Level = LogLevel.Warning, Message = "Departure of node {NodeId} was not acknowledged: {Code} {Reason}")]
    public static partial void DepartureFailed(ILogger logger, string nodeId, string code, string reason);

    [LoggerMessage(EventId = 3017, Level = LogLevel.Information, Message = "Watch resynced by snapshot at epoch {Epoch} sequence {Sequence}: {Reason}")]
    public static partial void WatchResynced(ILogger logger, string epoch, long sequence, string reason);

    [LoggerMessage(EventId = 3018, Level = LogLevel.Warning, Message = "Watch could not take a snapshot, will retry on the next broadcast: {Code} {Reason}")]
    public static partial void WatchSnapshotFailed(ILogger logger, string code, string reason);

    [LoggerMessage(EventId = 3019, Level = LogLevel.Error, Message = "A lease event handler threw for lease {LeaseId}")]
    public static partial void EventHandlerFailed(ILogger logger, string leaseId, Exception exception);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Error, Message = "A Reasserted event handler threw for node {NodeId}")]
    public static partial void ReassertedHandlerFailed(ILogger logger, string nodeId, Exception exception);

    [LoggerMessage(EventId = 3021, Level = LogLevel.Warning, Message = "Re-assertion of node {NodeId}: the registry refused {What}: {Code} {Reason}")]
    public static partial void RestoreRefused(ILogger logger, string nodeId, string what, string code, string reason);

    [LoggerMessage(EventId = 3023, Level = LogLevel.Warning, Message = "Release of lease {LeaseId} on port {Port} given up: the lease ran out on this client's clock, so the registry expires it")]
    public static partial void LeaseReleaseAbandoned(ILogger logger, string leaseId, int port);

    [LoggerMessage(EventId = 3024, Level = LogLevel.Error, Message = "A callback registered on a lease's lost token threw")]
    public static partial void LostTokenCallbackFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3090, Level = LogLevel.Information, Message = "Watch stream on {Endpoint} reopened ({Reason}); the watcher resyncs by snapshot")]
    public static partial void WatchStreamReopened(ILogger logger, string endpoint, string reason);

    [LoggerMessage(EventId = 3091, Level = LogLevel.Warning, Message = "Watch on {Endpoint} fell {Behind} of broadcasts behind: {Dropped} dropped, the watcher resyncs by snapshot")]
    public static partial void WatchBacklogDropped(ILogger logger, string endpoint, long dropped, string behind);
}
