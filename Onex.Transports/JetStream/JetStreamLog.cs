using Microsoft.Extensions.Logging;

namespace Onex.Transports.JetStream;

/// <summary>The JetStream backend's log messages (source-generated).</summary>
internal static partial class JetStreamLog
{
    [LoggerMessage(EventId = 4000, Level = LogLevel.Information,
        Message = "Bus {Bus} connected to {Url} (nats-server {ServerVersion}), stream {Stream}")]
    public static partial void Connected(ILogger logger, string bus, string url, string serverVersion, string stream);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning,
        Message = "Server {Url} has max_payload {ServerMaxPayload} bytes, below MaxEventBytes {MaxEventBytes}: larger events fail with TOO_LARGE (raise max_payload in the server config)")]
    public static partial void ServerMaxPayloadBelowLimit(ILogger logger, string url, int serverMaxPayload, int maxEventBytes);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "Created stream {Stream} for subjects {Subject}")]
    public static partial void StreamCreated(ILogger logger, string stream, string subject);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning,
        Message = "Stream {Stream} of bus {Bus} already exists with other limits than this participant's options; it is used as it is (the first declarer's limits win): {Differences}")]
    public static partial void StreamLimitsDiffer(ILogger logger, string stream, string bus, string differences);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Deleted stream {Stream}")]
    public static partial void StreamDeleted(ILogger logger, string stream);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Connection to {Url} lost; reconnecting")]
    public static partial void Disconnected(ILogger logger, string url);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Connection to {Url} (re)opened")]
    public static partial void ConnectionOpened(ILogger logger, string url);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Debug,
        Message = "Publish of event {EventId} to {Topic} failed, retrying within the publish timeout: {Reason}")]
    public static partial void PublishRetry(ILogger logger, string eventId, string topic, string reason);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Debug,
        Message = "Event {EventId} was already in stream {Stream} at sequence {Sequence}: a retried publish, stored once")]
    public static partial void PublishDuplicate(ILogger logger, string eventId, string stream, ulong sequence);

    [LoggerMessage(EventId = 4020, Level = LogLevel.Debug,
        Message = "Subscription {Pattern} reads consumer {Consumer} (durable: {Durable}) from sequence {StartSequence}")]
    public static partial void SubscriptionStarted(ILogger logger, string pattern, string consumer, bool durable, ulong startSequence);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Warning,
        Message = "Pulling from consumer {Consumer} failed (attempt {Attempt}), retrying in {Delay}")]
    public static partial void PullFailed(ILogger logger, Exception exception, string consumer, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 4022, Level = LogLevel.Warning,
        Message = "Consumer {Consumer} was gone from stream {Stream}; declared it again, delivering from {DeliverFrom}")]
    public static partial void ConsumerRecreated(ILogger logger, string consumer, string stream, string deliverFrom);

    [LoggerMessage(EventId = 4023, Level = LogLevel.Warning,
        Message = "Discarded a message on {Subject} (stream sequence {Sequence}) that is not a valid event: {Reason}")]
    public static partial void MalformedEvent(ILogger logger, string subject, ulong sequence, string reason);

    [LoggerMessage(EventId = 4024, Level = LogLevel.Debug,
        Message = "Could not {Operation} on consumer {Consumer}; the server redelivers after AckWait if needed")]
    public static partial void SettleFailed(ILogger logger, Exception exception, string operation, string consumer);

    [LoggerMessage(EventId = 4026, Level = LogLevel.Error, Message = "Subscription on consumer {Consumer} stopped after an unexpected failure")]
    public static partial void PumpStopped(ILogger logger, Exception exception, string consumer);

    [LoggerMessage(EventId = 4025, Level = LogLevel.Warning, Message = "Cleanup step {Step} of bus {Bus} failed")]
    public static partial void CleanupFailed(ILogger logger, Exception exception, string step, string bus);

    [LoggerMessage(EventId = 4027, Level = LogLevel.Warning,
        Message = "{Count} acknowledgements on consumer {Consumer} were not confirmed by the server in time; those events may be delivered again")]
    public static partial void AcksUnconfirmed(ILogger logger, int count, string consumer);
}
