using Microsoft.Extensions.Logging;

namespace Onex.Transports.Ipc;

/// <summary>Log messages of the Unix-socket bus (event ids 4100-4199).</summary>
internal static partial class IpcLog
{
    [LoggerMessage(4100, LogLevel.Information, "Hosting bus {BusName} at {SocketPath}")]
    public static partial void Hosting(ILogger logger, string busName, string socketPath);

    [LoggerMessage(4101, LogLevel.Information, "Stopped hosting bus {BusName} at {SocketPath}")]
    public static partial void HostStopped(ILogger logger, string busName, string socketPath);

    [LoggerMessage(4102, LogLevel.Debug, "Created private directory {Path}")]
    public static partial void DirectoryCreated(ILogger logger, string path);

    [LoggerMessage(4103, LogLevel.Warning, "Removed stale socket {SocketPath}: nobody was listening (its host must have died)")]
    public static partial void StaleSocketRemoved(ILogger logger, string socketPath);

    [LoggerMessage(4104, LogLevel.Debug, "Bus directory {Path} vanished while claiming it (a previous host was shutting down); retrying")]
    public static partial void BusDirectoryVanished(ILogger logger, string path);

    [LoggerMessage(4105, LogLevel.Debug, "Left bus directory {Path} in place: {Reason}")]
    public static partial void BusDirectoryKept(ILogger logger, string path, string reason);

    [LoggerMessage(4106, LogLevel.Warning, "Could not remove {Path}: {Reason}")]
    public static partial void CleanupFailed(ILogger logger, string path, string reason);

    [LoggerMessage(4110, LogLevel.Debug, "Connection {ConnectionId} accepted")]
    public static partial void ConnectionAccepted(ILogger logger, int connectionId);

    [LoggerMessage(4111, LogLevel.Information, "Participant {NodeId} joined as connection {ConnectionId}")]
    public static partial void ParticipantJoined(ILogger logger, int connectionId, string nodeId);

    [LoggerMessage(4112, LogLevel.Information, "Connection {ConnectionId} ({NodeId}) closed")]
    public static partial void ConnectionClosed(ILogger logger, int connectionId, string nodeId);

    [LoggerMessage(4113, LogLevel.Error, "Connection {ConnectionId} ({NodeId}) sent a bad frame and is dropped: {Code} {Reason}")]
    public static partial void ProtocolViolation(ILogger logger, int connectionId, string nodeId, string code, string reason);

    [LoggerMessage(4114, LogLevel.Warning, "Connection {ConnectionId} ({NodeId}) failed: {Reason}")]
    public static partial void ConnectionFailed(ILogger logger, int connectionId, string nodeId, string reason);

    [LoggerMessage(4115, LogLevel.Warning, "Connection {ConnectionId} sent no HELLO within {TimeoutMs} ms and is dropped")]
    public static partial void HandshakeTimedOut(ILogger logger, int connectionId, double timeoutMs);

    [LoggerMessage(4116, LogLevel.Warning, "Outbound queue of connection {ConnectionId} ({NodeId}) is full: dropping events for its drop-mode subscriptions ({Dropped} so far)")]
    public static partial void OutboundOverflow(ILogger logger, int connectionId, string nodeId, long dropped);

    [LoggerMessage(4117, LogLevel.Warning, "Event of {Size} bytes exceeds the frame limit {Limit} of connection {ConnectionId} ({NodeId}) and is dropped for it")]
    public static partial void TooLargeForPeer(ILogger logger, int connectionId, string nodeId, int size, int limit);

    [LoggerMessage(4118, LogLevel.Error, "Accepting a connection failed: {Reason}")]
    public static partial void AcceptFailed(ILogger logger, string reason);

    [LoggerMessage(4119, LogLevel.Error, "Unexpected failure serving connection {ConnectionId} ({NodeId})")]
    public static partial void ConnectionCrashed(ILogger logger, int connectionId, string nodeId, Exception exception);

    [LoggerMessage(4130, LogLevel.Information, "Joined bus {BusName} at {SocketPath}")]
    public static partial void Joined(ILogger logger, string busName, string socketPath);

    [LoggerMessage(4131, LogLevel.Warning, "Lost the host of bus {BusName} at {SocketPath}: {Reason}; reconnecting (events in the meantime are lost)")]
    public static partial void HostLost(ILogger logger, string busName, string socketPath, string reason);

    [LoggerMessage(4132, LogLevel.Debug, "Reconnect attempt {Attempt} to {SocketPath} failed: {Reason}; next in {DelayMs} ms")]
    public static partial void ReconnectFailed(ILogger logger, int attempt, string socketPath, string reason, double delayMs);

    [LoggerMessage(4133, LogLevel.Information, "Reconnected to bus {BusName} at {SocketPath}; re-sent {Subscriptions} subscriptions")]
    public static partial void Reconnected(ILogger logger, string busName, string socketPath, int subscriptions);

    [LoggerMessage(4134, LogLevel.Error, "The host of bus {BusName} sent a bad frame: {Code} {Reason}; reconnecting")]
    public static partial void HostProtocolViolation(ILogger logger, string busName, string code, string reason);

    [LoggerMessage(4135, LogLevel.Error, "The host of bus {BusName} closed the connection with error {Code}: {Reason}")]
    public static partial void HostSentError(ILogger logger, string busName, string code, string reason);

    [LoggerMessage(4136, LogLevel.Error, "Unexpected failure in the connection to bus {BusName}")]
    public static partial void ClientCrashed(ILogger logger, string busName, Exception exception);

    [LoggerMessage(4137, LogLevel.Information, "Left bus {BusName} at {SocketPath}")]
    public static partial void Left(ILogger logger, string busName, string socketPath);

    [LoggerMessage(4150, LogLevel.Warning, "Bus {BusName} refused a connection from pid {ProcessId}, uid {UserId}: not among the allowed users ({Allowed})")]
    public static partial void PeerRefused(ILogger logger, string busName, int processId, uint userId, string allowed);

    [LoggerMessage(4151, LogLevel.Warning, "Bus {BusName} refused a connection whose peer credentials (SO_PEERCRED) could not be read")]
    public static partial void PeerUnknown(ILogger logger, string busName);
}
