using NetMQ;
using Onex.Events;
using Onex.Transports.Security;

namespace Onex.Transports.Zmq;

/// <summary>ZeroMQ socket settings shared by the publishers, subscribers and forwarders of this project.</summary>
public sealed record ZmqSocketOptions
{
    /// <summary>The defaults below.</summary>
    public static ZmqSocketOptions Default { get; } = new();

    /// <summary>
    /// Send high-water mark in messages (per peer); past it PUB drops and DEALER blocks. A bus participant's message
    /// carries up to 16 KiB of back-to-back events of one topic, so a peer that stops reading can make ZeroMQ hold up
    /// to this many such messages for it (at the default, up to about 1.6 GiB of small events on each side of the
    /// connection); lower it for buses whose subscribers may stall (a Wait-mode subscription that stays full is one).
    /// </summary>
    public int SendHighWatermark { get; init; } = 100_000;

    /// <summary>Receive high-water mark in messages (see <see cref="SendHighWatermark"/> on what a message holds).</summary>
    public int ReceiveHighWatermark { get; init; } = 100_000;

    /// <summary>How long unsent messages are kept when a socket closes.</summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>First reconnect delay after a peer goes away.</summary>
    public TimeSpan ReconnectInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest reconnect delay (ZeroMQ backs off exponentially up to it).</summary>
    public TimeSpan ReconnectIntervalMax { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Size limits for encoded events.</summary>
    public EventCodecLimits CodecLimits { get; init; } = EventCodecLimits.Default;

    /// <summary>
    /// CurveZMQ server keys: when set, every socket that <b>binds</b> with these options (a forwarder, the registry's
    /// ROUTER and PUB) is a CURVE server with this key pair, so its tcp traffic is encrypted and only peers that know
    /// <see cref="CurveKeyPair.PublicKey"/> can talk to it. Null (the default): no encryption (ZeroMQ's NULL mechanism).
    /// </summary>
    public CurveKeyPair? CurveServerKeys { get; init; }

    /// <summary>
    /// The CurveZMQ server's public key (Z85): when set, every socket that <b>connects</b> with these options is a CURVE
    /// client of that server, with a fresh key pair of its own. A server with another key, or without CURVE, refuses
    /// the handshake (ZeroMQ then closes the connection and retries; see docs/ENCRYPTION.md). Null: no encryption.
    /// </summary>
    public string? CurveServerKey { get; init; }

    /// <summary>Whether a socket that binds (<paramref name="binds"/>) or connects with these options uses CURVE.</summary>
    internal bool UsesCurve(bool binds) => binds ? CurveServerKeys is not null : CurveServerKey is not null;

    /// <summary>Applies the settings to a socket that connects (a CURVE client when <see cref="CurveServerKey"/> is set).</summary>
    internal void ApplyTo(NetMQSocket socket) => ApplyTo(socket, binds: false);

    /// <summary>Applies the settings; a socket that <paramref name="binds"/> is a CURVE server when <see cref="CurveServerKeys"/> is set.</summary>
    internal void ApplyTo(NetMQSocket socket, bool binds)
    {
        ZmqCurve.Apply(socket, binds ? CurveServerKeys : null, binds ? null : CurveServerKey);
        socket.Options.SendHighWatermark = SendHighWatermark;
        socket.Options.ReceiveHighWatermark = ReceiveHighWatermark;
        // NetMQ refreshes a pipe's fill level only every (HWM - low watermark) messages; its default low watermark
        // makes a burst drop long before HWM messages are really queued. Half the HWM keeps bursts within it.
        socket.Options.SendLowWatermark = SendHighWatermark / 2;
        socket.Options.ReceiveLowWatermark = ReceiveHighWatermark / 2;
        socket.Options.Linger = Linger;
        socket.Options.ReconnectInterval = ReconnectInterval;
        socket.Options.ReconnectIntervalMax = ReconnectIntervalMax;
        // The largest single event, or the largest batch of small ones, whichever is more: a peer with larger codec
        // limits batches up to ZmqEventPublisher.MaxBatchBytes, and a message past MaxMsgSize drops the connection.
        socket.Options.MaxMsgSize = Math.Max(CodecLimits.MaxFrameBytes, ZmqEventPublisher.MaxBatchBytes) + 1024;
    }
}
