using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>
/// The host's broker: accepts participants on the bus socket and routes every published event (from a participant's
/// PUBLISH frame or from the host itself) to each connection with a matching subscription, once per connection, and
/// to the host's own subscriptions in-process. Events from one publisher are routed in the order they arrive, so
/// per-publisher order holds end to end.
/// </summary>
internal sealed class IpcBroker : IAsyncDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(1);

    private readonly Socket _listener;
    private readonly IpcLocalSubscriptions _local;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _gate = new();
    private readonly Dictionary<IpcBrokerConnection, Task> _connectionTasks = [];
    private IpcBrokerConnection[] _connections = [];
    private Task _acceptLoop = Task.CompletedTask;
    private readonly HashSet<uint> _allowedUsers;
    private int _nextConnectionId;

    private IpcBroker(Socket listener, string busName, IpcEventBusOptions options, OnexEventCodec codec, IpcLocalSubscriptions local, ILogger logger)
    {
        _listener = listener;
        BusName = busName;
        Options = options;
        Codec = codec;
        _local = local;
        _logger = logger;
        TimeProvider = options.TimeProvider ?? TimeProvider.System;
        _allowedUsers = options.AllowedPeerUserIds is { } allowed ? [.. allowed] : [IpcBusDirectory.EffectiveUserId];
    }

    public string BusName { get; }

    public IpcEventBusOptions Options { get; }

    public OnexEventCodec Codec { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>Starts accepting on <paramref name="listener"/>, which must be bound and listening.</summary>
    public static IpcBroker Start(Socket listener, string busName, IpcEventBusOptions options, OnexEventCodec codec, IpcLocalSubscriptions local, ILogger logger)
    {
        var broker = new IpcBroker(listener, busName, options, codec, local, logger);
        broker._acceptLoop = Task.Run(broker.AcceptLoopAsync);
        return broker;
    }

    /// <summary>The host's own numbering of the events it publishes.</summary>
    public IpcEventNumbering Numbering { get; } = new();

    /// <summary>
    /// Publishes an event of the host: numbers its EVENT frame and routes it, under one lock so that numbers follow
    /// the order the frames are queued in even when several threads publish at once.
    /// </summary>
    public ValueTask PublishAsync(OnexEvent evt, byte[] eventFrame, CancellationToken cancellationToken)
    {
        lock (Numbering)
        {
            Numbering.Stamp(eventFrame, evt.Topic);
            return RouteAsync(evt, eventFrame, default, cancellationToken);
        }
    }

    /// <summary>
    /// Routes one event. <paramref name="eventFrame"/> is its EVENT frame when the caller already has one; otherwise
    /// it is built from <paramref name="body"/> (a received PUBLISH body, read only before the first await) the
    /// first time a connection matches. Connections whose queue is full get the event dropped (drop-mode
    /// subscriptions only) or are waited for (a Wait-mode subscription matches) after every other target was served.
    /// </summary>
    public ValueTask RouteAsync(OnexEvent evt, byte[]? eventFrame, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        List<IpcBrokerConnection>? waitFor = null;
        foreach (var connection in Volatile.Read(ref _connections))
        {
            var match = connection.Match(evt.Topic);
            if (match == RouteMatch.None) continue;
            eventFrame ??= IpcFrames.EventFromBody(body.Span);
            if (eventFrame.Length - 4 > connection.PeerMaxFrameBytes)
            {
                IpcLog.TooLargeForPeer(_logger, connection.Id, connection.PeerNodeId, eventFrame.Length - 4, connection.PeerMaxFrameBytes);
                connection.RecordDrops(evt.Topic, overflow: false);
                continue;
            }
            if (connection.Outbound.TryEnqueue(eventFrame)) continue;
            if (match == RouteMatch.Lossless) (waitFor ??= []).Add(connection);
            else connection.RecordDrops(evt.Topic, overflow: true);
        }
        if (waitFor is null) return _local.DeliverAsync(evt, cancellationToken);
        return WaitThenDeliverAsync(evt, eventFrame!, waitFor, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        _listener.Dispose();
        IpcBrokerConnection[] connections;
        Task[] tasks;
        lock (_gate)
        {
            connections = _connections;
            tasks = [_acceptLoop, .. _connectionTasks.Values];
        }
        // Let what was already routed reach the participants; bounded, since a participant may not be reading.
        await Task.WhenAll(connections.Select(c => c.Outbound.DrainAsync(DrainTimeout, TimeProvider))).ConfigureAwait(false);
        foreach (var connection in connections) connection.Abort();
        try
        {
            await Task.WhenAll(tasks).WaitAsync(StopTimeout, TimeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Every connection was aborted; a loop still running will end on its own once its socket call returns.
            // (_stopping is deliberately not disposed: such a loop may still look at its token.)
        }
    }

    private async ValueTask WaitThenDeliverAsync(OnexEvent evt, byte[] eventFrame, List<IpcBrokerConnection> waitFor, CancellationToken cancellationToken)
    {
        foreach (var connection in waitFor)
            await connection.Outbound.EnqueueAsync(eventFrame, cancellationToken).ConfigureAwait(false);
        await _local.DeliverAsync(evt, cancellationToken).ConfigureAwait(false);
    }

    private async Task AcceptLoopAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                if (stopping.IsCancellationRequested) return;
                // For example EMFILE: keep serving the connections we have and try again shortly.
                IpcLog.AcceptFailed(_logger, ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            if (!PeerAllowed(socket))
            {
                socket.Dispose();
                continue;
            }
            var connection = new IpcBrokerConnection(Interlocked.Increment(ref _nextConnectionId), socket, this, _logger);
            lock (_gate)
            {
                if (stopping.IsCancellationRequested)
                {
                    connection.DisposeUnstarted();
                    return;
                }
                _connections = [.. _connections, connection];
                // Added under the lock that ServeAsync takes to remove it, so removal cannot come first.
                _connectionTasks.Add(connection, ServeAsync(connection, stopping));
            }
        }
    }

    /// <summary>
    /// Whether the connecting process runs as an allowed user (<see cref="IpcEventBusOptions.AllowedPeerUserIds"/>), by
    /// the kernel's SO_PEERCRED. The 0700 directory already keeps other users out; this holds when it is loosened or
    /// the socket is handed over another way. A refusal is logged, and the peer is closed before anything is read.
    /// </summary>
    private bool PeerAllowed(Socket socket)
    {
        if (!IpcPeerCredentials.TryRead(socket, out var peer))
        {
            IpcLog.PeerUnknown(_logger, BusName);
            return false;
        }
        if (_allowedUsers.Contains(peer.UserId)) return true;
        IpcLog.PeerRefused(_logger, BusName, peer.ProcessId, peer.UserId, string.Join(", ", _allowedUsers.Order()));
        return false;
    }

    private async Task ServeAsync(IpcBrokerConnection connection, CancellationToken stopping)
    {
        // Leave the caller (it holds _gate) before starting, so the removal below always follows the registration.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        await connection.Start(stopping).ConfigureAwait(false);
        lock (_gate)
        {
            var index = Array.IndexOf(_connections, connection);
            if (index >= 0) _connections = [.. _connections[..index], .. _connections[(index + 1)..]];
            _connectionTasks.Remove(connection);
        }
    }
}
