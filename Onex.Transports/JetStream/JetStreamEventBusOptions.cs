using Microsoft.Extensions.Logging;
using NATS.Client.JetStream.Models;
using Onex.Events;

namespace Onex.Transports.JetStream;

/// <summary>
/// Settings of a <see cref="JetStreamEventBus"/>: where the server is, the stream that backs the bus, and how
/// consumers acknowledge. Change with <c>with</c>: <c>JetStreamEventBusOptions.Default with { Url = "nats://10.0.0.5:4222" }</c>.
/// </summary>
public sealed record JetStreamEventBusOptions
{
    /// <summary>A bus named <c>default</c> on <c>nats://127.0.0.1:4222</c>, file storage, 1 replica.</summary>
    public static JetStreamEventBusOptions Default { get; } = new();

    /// <summary>The NATS server URL (comma-separate several seed servers of a cluster).</summary>
    public string Url { get; init; } = "nats://127.0.0.1:4222";

    /// <summary>
    /// The bus name: letters, digits and <c>-_:/@</c>, optionally dot-separated. It names the stream
    /// (<c>ONEX_&lt;name&gt;</c>) and the subject space (<c>onex.&lt;name&gt;.&gt;</c>); names with characters other
    /// than letters, digits, '-' and '_' get a short hash suffix there so distinct names never collide.
    /// </summary>
    public string Name { get; init; } = "default";

    /// <summary>The node this bus belongs to; shown in the server's connection list.</summary>
    public string NodeId { get; init; } = "";

    /// <summary>How long <see cref="JetStreamEventBus.ConnectAsync"/> may take before it fails with UNAVAILABLE.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How to authenticate to the server (user/password, token, NKey or creds file; docs/ENCRYPTION.md). None by default.</summary>
    public NatsCredentials Credentials { get; init; } = NatsCredentials.None;

    /// <summary>Timeout of one JetStream API call or one publish attempt waiting for its acknowledgement.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The whole budget of one <see cref="JetStreamEventBus.PublishAsync"/>, retries included. Retries are safe:
    /// the event id is the message id, so the stream stores a retried event once (see <see cref="DuplicateWindow"/>).
    /// </summary>
    public TimeSpan PublishTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>First wait before reconnecting after the connection to the server is lost.</summary>
    public TimeSpan ReconnectWaitMin { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest wait between reconnect attempts (the client retries forever until disposed).</summary>
    public TimeSpan ReconnectWaitMax { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Where the stream keeps events.</summary>
    public JetStreamStorage Storage { get; init; } = JetStreamStorage.File;

    /// <summary>How many servers hold a copy of the stream (1 on a single server; 3 or 5 in a cluster).</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>Events older than this are removed from the stream; <see cref="TimeSpan.Zero"/> keeps them forever.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(1);

    /// <summary>The stream keeps at most this many bytes, dropping the oldest events; -1 is unlimited.</summary>
    public long MaxBytes { get; init; } = 1L << 30;

    /// <summary>
    /// The largest encoded event (envelope plus payload) the stream accepts: 1 MiB payloads plus 64 KiB of envelope
    /// by default. The server's <c>max_payload</c> (1 MB unless configured) caps it too: 1 MiB events need a server
    /// started with e.g. <c>max_payload: 8MB</c>. A larger event fails to publish with TOO_LARGE.
    /// </summary>
    public int MaxEventBytes { get; init; } = 1024 * 1024 + 64 * 1024;

    /// <summary>How long the stream remembers event ids to drop a retried publish of the same event.</summary>
    public TimeSpan DuplicateWindow { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long the server waits for an event handed to a subscriber to be acknowledged before delivering it
    /// again. Pick it longer than a reader needs to work through a full subscription queue.
    /// </summary>
    public TimeSpan AckWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How many times an unacknowledged event is delivered at most; -1 is unlimited (at-least-once).</summary>
    public int MaxDeliver { get; init; } = -1;

    /// <summary>
    /// How long one pull request waits for events. When a pull ends empty the subscription checks that its
    /// consumer still exists (the server may have lost it), so this also bounds how long recovery takes.
    /// </summary>
    public TimeSpan PullExpiry { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A non-durable subscription's consumer is removed by the server after this long without a reader.</summary>
    public TimeSpan EphemeralInactiveThreshold { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Delete the stream (and every event and durable consumer in it) when the bus is disposed. For tests and
    /// throwaway buses; off by default.
    /// </summary>
    public bool DeleteStreamOnDispose { get; init; }

    /// <summary>The envelope codec; its limits apply before <see cref="MaxEventBytes"/>.</summary>
    public OnexEventCodec Codec { get; init; } = OnexEventCodec.Default;

    /// <summary>Logs of the bus and of the NATS client; none when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock for timeouts, retry back-off and event timestamps; <see cref="System.TimeProvider.System"/> when null.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>The stream these settings describe (storage, limits, duplicate window), as the bus declares it.</summary>
    public StreamConfig ToStreamConfig(string streamName, string subject) => new(streamName, [subject])
    {
        Storage = Storage == JetStreamStorage.Memory ? StreamConfigStorage.Memory : StreamConfigStorage.File,
        NumReplicas = Replicas,
        MaxAge = MaxAge,
        MaxBytes = MaxBytes,
        MaxMsgSize = MaxEventBytes,
        DuplicateWindow = DuplicateWindow,
        Retention = StreamConfigRetention.Limits,
        Discard = StreamConfigDiscard.Old,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Url))
            throw new ArgumentException("Url must name a NATS server, e.g. nats://127.0.0.1:4222.", nameof(Url));
        JetStreamNames.EnsureValidBusName(Name);
        RequirePositive(ConnectTimeout, nameof(ConnectTimeout));
        ArgumentNullException.ThrowIfNull(Credentials, nameof(Credentials));
        Credentials.Validate();
        RequirePositive(RequestTimeout, nameof(RequestTimeout));
        RequirePositive(PublishTimeout, nameof(PublishTimeout));
        RequirePositive(ReconnectWaitMin, nameof(ReconnectWaitMin));
        if (ReconnectWaitMax < ReconnectWaitMin)
            throw new ArgumentOutOfRangeException(nameof(ReconnectWaitMax), ReconnectWaitMax, "ReconnectWaitMax must be at least ReconnectWaitMin.");
        if (Replicas is < 1 or > 5)
            throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, "Replicas must be between 1 and 5.");
        if (MaxAge < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(MaxAge), MaxAge, "MaxAge must not be negative.");
        if (MaxBytes is 0 or < -1)
            throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "MaxBytes must be positive or -1.");
        if (MaxEventBytes < 1024)
            throw new ArgumentOutOfRangeException(nameof(MaxEventBytes), MaxEventBytes, "MaxEventBytes must be at least 1024.");
        RequirePositive(DuplicateWindow, nameof(DuplicateWindow));
        RequirePositive(AckWait, nameof(AckWait));
        if (MaxDeliver is 0 or < -1)
            throw new ArgumentOutOfRangeException(nameof(MaxDeliver), MaxDeliver, "MaxDeliver must be positive or -1.");
        if (PullExpiry < TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(PullExpiry), PullExpiry, "PullExpiry must be at least 1 second.");
        if (EphemeralInactiveThreshold < PullExpiry)
            throw new ArgumentOutOfRangeException(nameof(EphemeralInactiveThreshold), EphemeralInactiveThreshold, "EphemeralInactiveThreshold must be at least PullExpiry.");
        ArgumentNullException.ThrowIfNull(Codec, nameof(Codec));
    }

    private static void RequirePositive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }
}

/// <summary>Where a JetStream stream keeps its events.</summary>
public enum JetStreamStorage
{
    /// <summary>On disk: events and durable consumer positions survive a server restart.</summary>
    File,

    /// <summary>In memory: faster, lost when the server restarts (the bus then declares the stream again).</summary>
    Memory,
}
