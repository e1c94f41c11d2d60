using Microsoft.Extensions.Logging;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>
/// Settings of an <see cref="IpcEventBus"/>, for hosting (<see cref="IpcEventBus.HostAsync"/>) and joining
/// (<see cref="IpcEventBus.JoinAsync"/>) alike. Change them with <c>with</c>:
/// <c>IpcEventBusOptions.Default with { Name = "orders" }</c>.
/// </summary>
public sealed record IpcEventBusOptions
{
    /// <summary>Bus <c>default</c> under <see cref="DefaultRootDirectory"/>, 4 MiB events, 1024-frame outbound queues.</summary>
    public static IpcEventBusOptions Default { get; } = new();

    /// <summary>
    /// The bus name: the directory <c>&lt;root&gt;/&lt;name&gt;/</c> that holds the socket. Letters, digits and
    /// <c>-_.</c>, at most 64 characters, not starting with a dot.
    /// </summary>
    public string Name { get; init; } = "default";

    /// <summary>This participant's node id, sent to the host when joining (it appears in the host's logs).</summary>
    public string NodeId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>
    /// The directory holding one sub-directory per bus; null for <see cref="DefaultRootDirectory"/>. Created with
    /// mode 0700 when missing; refused when it exists with group/other permission bits or another owner.
    /// </summary>
    public string? RootDirectory { get; init; }

    /// <summary>
    /// Joining only: the host's socket, as an absolute path or as the host's <see cref="IpcEventBus.Endpoint"/>
    /// (<c>unix:///…/bus.sock</c>). When set, <see cref="RootDirectory"/> and <see cref="Name"/> are not used to find
    /// the socket, and the joined bus takes its name from the host. This is all another process needs to join.
    /// </summary>
    public string? SocketPath { get; init; }

    /// <summary>
    /// Largest frame accepted or sent, in bytes, counting the type byte and body (the length field's value).
    /// A peer that announces a bigger frame gets a <c>TOO_LARGE</c> error frame and is disconnected; publishing a
    /// bigger event throws <see cref="Onex.Errors.MessageTooLargeException"/>. The default fits the largest event
    /// <see cref="EventCodecLimits.Default"/> allows.
    /// </summary>
    public int MaxFrameBytes { get; init; } = EventCodecLimits.Default.MaxFrameBytes + 1;

    /// <summary>
    /// Frames queued per connection before the sender is held back. On the host, an event bound for a participant
    /// whose queue is full is dropped for that participant when all its matching subscriptions use a drop mode (the
    /// drop is reported to it and counted in its subscriptions' <see cref="Onex.Bus.IEventSubscription.DroppedCount"/>),
    /// and waited for when one of them uses <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/>.
    /// On a participant, publishers wait for room.
    /// </summary>
    public int OutboundQueueCapacity { get; init; } = 1024;

    /// <summary>First delay before a joined participant tries to reconnect to a lost host (exponential, with jitter).</summary>
    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest delay between reconnect attempts. A participant keeps trying until it is disposed.</summary>
    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long either side waits for the other's HELLO/WELCOME frame after connecting.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Hosting only: the user ids whose processes may connect, checked with <c>SO_PEERCRED</c> (the kernel's record of
    /// who opened the connection) on every accepted connection, besides the bus directory's 0700. Null (the default):
    /// this process's effective user only. A refused peer is logged (its pid and uid) and disconnected before it is read.
    /// </summary>
    public IReadOnlyCollection<uint>? AllowedPeerUserIds { get; init; }

    /// <summary>Where log messages go; none when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock for reconnect backoff and handshake timeouts; <see cref="TimeProvider.System"/> when null.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>
    /// <c>$XDG_RUNTIME_DIR/onex</c> when <c>XDG_RUNTIME_DIR</c> is set (a per-user 0700 directory on systemd machines),
    /// else <c>&lt;temp&gt;/onex-&lt;euid&gt;</c>.
    /// </summary>
    public static string DefaultRootDirectory
    {
        get
        {
            var runtimeDir = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            if (!string.IsNullOrEmpty(runtimeDir) && Path.IsPathFullyQualified(runtimeDir))
                return Path.Combine(runtimeDir, "onex");
            return Path.Combine(Path.GetTempPath(), $"onex-{IpcBusDirectory.EffectiveUserId}");
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> (or its out-of-range subclass) naming the first bad setting.</summary>
    public void Validate()
    {
        if (!IpcBusDirectory.IsValidBusName(Name))
            throw new ArgumentException(
                $"Bus name '{Name}' is not valid: use 1-64 letters, digits and -_., not starting with a dot.", nameof(Name));
        if (NodeId is null)
            throw new ArgumentNullException(nameof(NodeId));
        if (RootDirectory is not null && !Path.IsPathFullyQualified(RootDirectory))
            throw new ArgumentException($"Root directory '{RootDirectory}' must be an absolute path.", nameof(RootDirectory));
        if (SocketPath is not null && !Path.IsPathFullyQualified(IpcEventBus.SocketPathFromEndpoint(SocketPath)))
            throw new ArgumentException($"Socket path '{SocketPath}' must be an absolute path or a unix:// endpoint.", nameof(SocketPath));
        if (MaxFrameBytes < IpcFrames.MinMaxFrameBytes)
            throw new ArgumentOutOfRangeException(nameof(MaxFrameBytes), MaxFrameBytes, $"MaxFrameBytes must be at least {IpcFrames.MinMaxFrameBytes}.");
        if (OutboundQueueCapacity < 1)
            throw new ArgumentOutOfRangeException(nameof(OutboundQueueCapacity), OutboundQueueCapacity, "OutboundQueueCapacity must be at least 1.");
        if (ReconnectMinDelay < TimeSpan.Zero || ReconnectMaxDelay < ReconnectMinDelay)
            throw new ArgumentOutOfRangeException(nameof(ReconnectMaxDelay), ReconnectMaxDelay, "Reconnect delays must satisfy 0 <= ReconnectMinDelay <= ReconnectMaxDelay.");
        if (HandshakeTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout, "HandshakeTimeout must be positive.");
    }
}
