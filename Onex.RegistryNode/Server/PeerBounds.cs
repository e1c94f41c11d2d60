using NetMQ;
using Onex.Transports.Zmq;

namespace Onex.RegistryNode.Server;

/// <summary>
/// What one outside peer can make the registry's sockets hold (PROTOCOL.md section 14). ZeroMQ counts its queues in
/// messages, so each bound is a message count times the largest message that queue can hold; the registry never blocks
/// on a full queue: it drops (and counts) a reply, and the PUB socket drops broadcasts for that subscriber only.
/// </summary>
internal static class PeerBounds
{
    /// <summary>
    /// Replies queued for one requesting peer that does not read them. Past it the reply is dropped and counted
    /// (the peer retries and gets the remembered reply). Well above the 1,280 replies one wake-up can send a single peer
    /// only when that peer keeps more than 1,000 requests in flight.
    /// </summary>
    public const int ReplyHighWatermark = 1_000;

    /// <summary>Replies at least this large count against <see cref="QueuedReplyBytesPerPeer"/> (smaller ones: at most the high-water mark of them).</summary>
    public const int LargeReplyBytes = 4 * 1024;

    /// <summary>
    /// Bytes of large replies (snapshots, introspection) queued for one peer that does not read them. Past it further
    /// replies to that peer are dropped and counted; one reply always goes to a peer with nothing queued (replies reach 64 MiB).
    /// </summary>
    public const long QueuedReplyBytesPerPeer = 16L * 1024 * 1024;

    /// <summary>Bytes of large replies queued for all peers together; past it large replies are dropped until some are read.</summary>
    public const long QueuedReplyBytesTotal = 128L * 1024 * 1024;

    /// <summary>
    /// Bytes of replies one wake-up of the registry thread holds for its group commit before it stops taking requests,
    /// commits and sends them (the next wake-up takes the rest).
    /// </summary>
    public const long WakeUpReplyBytes = 16L * 1024 * 1024;

    /// <summary>
    /// Complete requests queued from one peer before ZeroMQ stops reading its connection (TCP pushes back on the peer;
    /// nothing is lost). ZeroMQ counts messages, not bytes, so what one connection can make the node hold in requests
    /// is this many frames of at most <see cref="Hosting.RegistryNodeOptions.MaxReceiveBytes"/> each: 128 x (1 MiB +
    /// 64 KiB) = 136 MiB by default (it was 1,000 x 4 MiB, about 4 GiB). Twice the 64 requests in flight of the
    /// pipelined benchmarks; a client with more in flight waits on TCP, it loses nothing.
    /// </summary>
    public const int RequestHighWatermark = 128;

    /// <summary>Bytes of requests one connection can make the node hold: <see cref="RequestHighWatermark"/> frames of at most <paramref name="maxReceiveBytes"/>.</summary>
    public static long QueuedRequestBytesPerPeer(long maxReceiveBytes) => RequestHighWatermark * maxReceiveBytes;

    /// <summary>
    /// Bytes of received frames ZeroMQ may hold for the whole process before the registry closes every connection of its
    /// request socket (<see cref="QueuedReplyBytes.Received"/>): what bounds a message whose last frame never comes and
    /// many connections each filling its request queue, which the per-connection high-water mark does not (it counts
    /// finished messages, per connection). Sized for the 300 MB the node may reach under abuse: at rest ~80 MiB, this, and
    /// the garbage of the work on the requests it reads meanwhile (four connections flooding a busy node, one run each on a
    /// loaded machine: 128 MiB peaked at 298 MiB and 96 MiB at 328 MiB while the registry copied each request it read;
    /// 96 MiB without the copy at 265 MiB). Far above
    /// what well-behaved clients have in flight (requests are small; it takes 90 requests of the largest size, 1 MiB,
    /// unread at once), though below one connection's full queue of such frames (<see cref="RequestHighWatermark"/> x
    /// 1 MiB + 64 KiB = 136 MiB), which therefore gets cut, not pushed back.
    /// </summary>
    public const long ReceivedBytesTotal = 96L * 1024 * 1024;

    /// <summary>
    /// Broadcasts queued for one subscriber that does not read. Past it ZeroMQ drops broadcasts for that subscriber
    /// only; it sees the gap in sequence numbers and resyncs by snapshot (PROTOCOL.md 10.1).
    /// </summary>
    public const int BroadcastHighWatermark = 1_000;

    /// <summary>The broadcast (PUB) socket's settings: the bus defaults with <see cref="BroadcastHighWatermark"/>.</summary>
    public static ZmqSocketOptions BroadcastSocket { get; } = ZmqSocketOptions.Default with { SendHighWatermark = BroadcastHighWatermark };

    /// <summary>Sets the request socket's queues: <see cref="ReplyHighWatermark"/>, <see cref="RequestHighWatermark"/>, and counted drops.</summary>
    public static void ApplyToRouter(NetMQSocket router)
    {
        router.Options.ReceiveHighWatermark = RequestHighWatermark;
        router.Options.SendHighWatermark = ReplyHighWatermark;
        // NetMQ tells the writer how far the reader got only every (HWM - low watermark) messages; half keeps a burst
        // of replies from being dropped long before the peer really has a full queue.
        router.Options.SendLowWatermark = ReplyHighWatermark / 2;
        router.Options.ReceiveLowWatermark = RequestHighWatermark / 2;
        // A reply to a full or vanished peer then fails to send instead of vanishing silently, so it can be counted.
        router.Options.RouterMandatory = true;
    }
}
