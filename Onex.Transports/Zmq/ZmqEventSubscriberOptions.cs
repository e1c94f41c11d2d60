using Microsoft.Extensions.Logging;

namespace Onex.Transports.Zmq;

/// <summary>Settings of a <see cref="ZmqEventSubscriber"/>.</summary>
public sealed record ZmqEventSubscriberOptions
{
    /// <summary>Default socket settings, no confirmation publisher, a 10 second handshake timeout.</summary>
    public static ZmqEventSubscriberOptions Default { get; } = new();

    /// <summary>High-water marks, reconnect intervals, linger and size limits of the SUB socket.</summary>
    public ZmqSocketOptions Socket { get; init; } = ZmqSocketOptions.Default;

    /// <summary>
    /// A publisher whose messages reach the endpoint this subscriber connects to: connected to the same forwarder, or
    /// the very PUB socket this subscriber connects to. When set, <see cref="ZmqEventSubscriber.SubscribeAsync"/>
    /// returns only after a probe published through it came back through the new filter, which proves the
    /// subscription live end to end (no slow-joiner gap). When null, it returns once the filter is set on the local
    /// socket, and a bare PUB may still drop events published before the filter reached it.
    /// </summary>
    public ZmqEventPublisher? ProbePublisher { get; init; }

    /// <summary>How long a subscription (or a participant's readiness check) may wait for its probe to come back.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where log messages go; nowhere when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock that times handshakes; <see cref="System.TimeProvider.System"/> when null.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>
    /// What a full <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> subscription does. True (the
    /// default): this subscriber stops reading its socket until that subscription has room, which holds up its other
    /// subscriptions too (right for a subscriber with one subscription). False (what a bus participant uses): reading
    /// never pauses; the full subscription's event is dropped and counted in its
    /// <see cref="Onex.Bus.IEventSubscription.DroppedCount"/> and in <see cref="Health"/>, so one slow subscription
    /// cannot stall the others. Also decides the full mode of subscriptions that leave it unset: Wait when true,
    /// DropNewest when false.
    /// </summary>
    public bool PauseWhenFull { get; init; } = true;

    /// <summary>
    /// Where the connection state (from ZeroMQ's socket monitor: connected, disconnected) and the drops of this
    /// subscriber's subscriptions are reported; nothing is reported when null.
    /// </summary>
    public Onex.Bus.EventBusHealth? Health { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> when a setting is out of range.</summary>
    public void Validate()
    {
        if (HandshakeTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout, "HandshakeTimeout must be positive.");
        ArgumentNullException.ThrowIfNull(Socket, nameof(Socket));
    }
}
