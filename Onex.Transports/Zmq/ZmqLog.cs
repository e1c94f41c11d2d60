using Microsoft.Extensions.Logging;

namespace Onex.Transports.Zmq;

/// <summary>Log messages of the ZeroMQ transport (source-generated, structured).</summary>
internal static partial class ZmqLog
{
    [LoggerMessage(EventId = 7101, Level = LogLevel.Information,
        Message = "Forwarder of bus {BusName} listening: publishers connect to {PublishEndpoint}, subscribers to {SubscribeEndpoint}")]
    public static partial void ForwarderStarted(this ILogger logger, string busName, string publishEndpoint, string subscribeEndpoint);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Information,
        Message = "Forwarder of bus {BusName} stopped after forwarding {MessageCount} messages")]
    public static partial void ForwarderStopped(this ILogger logger, string busName, long messageCount);

    [LoggerMessage(EventId = 7103, Level = LogLevel.Debug,
        Message = "Forwarder of bus {BusName}: first subscriber {Change} prefix '{Prefix}'")]
    public static partial void ForwarderSubscription(this ILogger logger, string busName, string change, string prefix);

    [LoggerMessage(EventId = 7104, Level = LogLevel.Error,
        Message = "Forwarder of bus {BusName} failed while forwarding; it keeps running")]
    public static partial void ForwarderFailed(this ILogger logger, string busName, Exception exception);

    [LoggerMessage(EventId = 7105, Level = LogLevel.Warning,
        Message = "Forwarder of bus {BusName}: no confirmation within {TimeoutMs} ms that the listener on {Endpoint} closed")]
    public static partial void ListenerCloseUnconfirmed(this ILogger logger, string busName, string endpoint, double timeoutMs);

    [LoggerMessage(EventId = 7111, Level = LogLevel.Information,
        Message = "Participant {NodeId} of bus {BusName} ready ({Role}): publishing to {PublishEndpoint}, subscribed at {SubscribeEndpoint}")]
    public static partial void ParticipantReady(this ILogger logger, string nodeId, string busName, string role, string publishEndpoint, string subscribeEndpoint);

    [LoggerMessage(EventId = 7112, Level = LogLevel.Debug,
        Message = "Path through {Endpoint} confirmed after {ProbeCount} probe(s) in {ElapsedMs:0.0} ms")]
    public static partial void PathConfirmed(this ILogger logger, string endpoint, int probeCount, double elapsedMs);

    [LoggerMessage(EventId = 7113, Level = LogLevel.Warning,
        Message = "No probe came back through {Endpoint} after {ProbeCount} probe(s) in {ElapsedMs:0} ms")]
    public static partial void PathNotConfirmed(this ILogger logger, string endpoint, int probeCount, double elapsedMs);

    [LoggerMessage(EventId = 7121, Level = LogLevel.Warning,
        Message = "Dropped a malformed message from {Endpoint} ({MalformedCount} so far): {Reason}")]
    public static partial void MalformedMessage(this ILogger logger, string endpoint, long malformedCount, string reason);

    [LoggerMessage(EventId = 7122, Level = LogLevel.Error,
        Message = "Receive loop on {Endpoint} failed; it keeps running")]
    public static partial void ReceiveFailed(this ILogger logger, string endpoint, Exception exception);

    [LoggerMessage(EventId = 7123, Level = LogLevel.Debug,
        Message = "Receiving from {Endpoint} paused: subscription '{Pattern}' is full in Wait mode")]
    public static partial void ReceivePaused(this ILogger logger, string endpoint, string pattern);

    [LoggerMessage(EventId = 7131, Level = LogLevel.Error,
        Message = "Publisher on {Endpoint} failed while sending; it keeps running")]
    public static partial void SendFailed(this ILogger logger, string endpoint, Exception exception);
}
