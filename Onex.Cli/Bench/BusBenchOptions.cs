using Onex.Protocol;

namespace Onex.Cli.Bench;

/// <summary>What <c>onex bench bus</c> measures and how long it may take.</summary>
internal sealed record BusBenchOptions
{
    /// <summary>In-memory, 64-byte payloads, the backend's default counts, 5 rounds, 120 s.</summary>
    public static BusBenchOptions Default { get; } = new();

    /// <summary>Default events per throughput round (JetStream stores every event on disk, so it gets fewer).</summary>
    public const int DefaultCount = 100_000;

    /// <summary>Default events per throughput round for JetStream.</summary>
    public const int DefaultJetStreamCount = 20_000;

    /// <summary>Default ping-pongs per round-trip round.</summary>
    public const int DefaultRoundTrips = 2_000;

    /// <summary>The backend: one of <see cref="BusKinds"/>.</summary>
    public string Backend { get; init; } = BusKinds.Memory;

    /// <summary>Payload bytes per event (the bus adds its envelope on top; throughput in MB/s counts payload bytes).</summary>
    public int PayloadBytes { get; init; } = 64;

    /// <summary>Events per throughput round; null for the backend's default.</summary>
    public int? Count { get; init; }

    /// <summary>Ping-pongs per round-trip round; null for <see cref="DefaultRoundTrips"/>.</summary>
    public int? RoundTrips { get; init; }

    /// <summary>Measured rounds; bus and raw take turns going first, and the report gives medians over rounds.</summary>
    public int Rounds { get; init; } = 5;

    /// <summary>
    /// Publishes awaited concurrently by the throughput publisher of the JetStream bus and of raw NATS.Net (each waits
    /// for its PubAck). The other backends' publishes complete on hand-over, so they publish one after another.
    /// </summary>
    public int InFlight { get; init; } = 256;

    /// <summary>The whole run, set-up and tear-down included, must finish within this.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// How long a throughput reader waits for the next event after the publisher finished before it counts the rest
    /// as lost (ZeroMQ drops past its high-water marks; the other backends do not lose events in Wait mode).
    /// </summary>
    public TimeSpan QuietPeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The ZeroMQ send and receive high-water marks of the bus's sockets and the raw sockets alike; 0 (the bench's
    /// default) is unlimited. With a finite mark a burst can be dropped long before the mark is reached: a ZeroMQ pipe
    /// learns how much its reader consumed only every (mark - 1024) messages, so with the project's default of 100,000
    /// a 100,000-event round after a 20,000-event warm-up lost about 20,000 events on bus and raw alike.
    /// </summary>
    public int ZmqHighWatermark { get; init; }

    /// <summary>A NATS server to use for the jetstream backend; null starts a private <c>nats-server -js</c>.</summary>
    public string? NatsUrl { get; init; }

    /// <summary>Events per throughput round for <see cref="Backend"/>.</summary>
    public int EffectiveCount => Count ?? (Backend == BusKinds.JetStream ? DefaultJetStreamCount : DefaultCount);

    /// <summary>Ping-pongs per round-trip round.</summary>
    public int EffectiveRoundTrips => RoundTrips ?? DefaultRoundTrips;

    /// <summary>
    /// Events per warm-up throughput run: a whole round. A fifth of one was not enough: the first measured ZeroMQ round
    /// then ran at a third of the speed of the later ones, for bus and raw alike (queues and heap still growing).
    /// </summary>
    public int WarmUpCount => EffectiveCount;

    /// <summary>Ping-pongs in the warm-up.</summary>
    public int WarmUpRoundTrips => Math.Min(EffectiveRoundTrips, Math.Max(200, EffectiveRoundTrips / 4));
}
