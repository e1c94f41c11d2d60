using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NetMQ;
using NetMQ.Monitoring;
using NetMQ.Sockets;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Zmq;

/// <summary>
/// Subscribes to events published as <c>[topic][event]</c> frames (by <see cref="ZmqEventPublisher"/>, a bus
/// forwarder's XPUB, or the registry's PUB) through one SUB socket, and hands them to subscriptions with a bounded
/// queue each (<see cref="SubscriptionOptions"/>). The event frame may hold several events of the topic back to back
/// (the bus's batched framing); they are delivered in order.
/// </summary>
/// <remarks>
/// <para>Filtering: a pattern becomes a ZeroMQ prefix filter on its literal prefix
/// (<see cref="Topic.LiteralPrefix"/>, so <c>orders.*.created</c> filters on <c>orders.</c>), and every event that
/// passes is matched exactly against each subscription's <see cref="TopicPattern"/>.</para>
/// <para>Confirmation: with <see cref="ZmqEventSubscriberOptions.ProbePublisher"/> set, <see cref="SubscribeAsync"/>
/// also subscribes to a fresh probe topic after the pattern's filter and publishes probes on it until one comes
/// back. ZeroMQ applies one socket's filters in order, so the probe's return proves the pattern's filter is in place
/// at the far end; an event published after that (by a publisher whose own path is up) is delivered.</para>
/// <para>Wire errors: messages that are not exactly two frames or whose event frame is empty are dropped; an event
/// that does not decode or whose topic differs from the topic frame ends its message (the events before it were
/// delivered, the rest is dropped). Each is counted once in <see cref="MalformedCount"/> and logged at Warning level
/// at exponentially spaced counts (1st, 2nd, 4th, ...), never failing the receive loop.</para>
/// <para>Backpressure: events are handed to subscriptions on the socket's poller thread with
/// <see cref="EventChannel.TryWrite"/>. A drop-mode subscription never holds anything up. A full
/// <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> subscription, with
/// <see cref="ZmqEventSubscriberOptions.PauseWhenFull"/> (the default), makes this subscriber stop
/// reading the socket (after giving the event to every other matching subscription) until that subscription has
/// room: the other subscriptions of this subscriber wait too, ZeroMQ buffers up to the high-water marks, and past
/// them the sending side drops. Without it (a bus participant) reading never pauses and the full subscription's
/// event is dropped and counted, so one slow subscription never stalls the others.</para>
/// <para>Connection state: with <see cref="ZmqEventSubscriberOptions.Health"/>, ZeroMQ's socket monitor
/// (<see cref="NetMQMonitor"/>) on the SUB socket reports connects and disconnects there.</para>
/// <para>Thread-safety: all members are thread-safe. The socket, its filters and the subscription list belong to
/// the poller thread; callers' requests are queued to it.</para>
/// </remarks>
public sealed class ZmqEventSubscriber : IAsyncDisposable
{
    // Messages read per wake-up before the poller looks at its queued requests again.
    private const int ReceiveBatch = 4096;
    private static readonly TimeSpan FirstProbeInterval = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan MaxProbeInterval = TimeSpan.FromMilliseconds(100);

    private readonly SubscriberSocket _socket;
    private readonly NetMQPoller _poller;
    private readonly ZmqEventSubscriberOptions _options;
    private readonly OnexEventCodec _codec;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _id = Guid.NewGuid().ToString("N");
    private readonly Func<EventChannel, ValueTask> _unsubscribe;
    private readonly CancellationTokenSource _disposing = new();
    private readonly NetMQMonitor? _monitor;

    // Owned by the poller thread (and by the disposing thread once the poller has stopped).
    private readonly List<EventChannel> _routes = [];
    private readonly Dictionary<string, int> _filterCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _probes = new(StringComparer.Ordinal);
    private Msg _topicFrame;
    private Msg _eventFrame;
    private Msg _sequenceFrame;
    // The current message's sequence frame, when it has one (bus participants' messages do).
    private bool _numbered;
    private long _sequencePublisher;
    private long _sequenceFirst;
    private int _sequenceEvents;
    // Next expected sequence per (publisher, topic); cleared when a filter goes (what it let through stops).
    private readonly Dictionary<(long Publisher, string Topic), long> _expected = [];
    private const int MaxTrackedTopics = 65_536;
    private bool _paused;
    private bool _socketPolled = true;
    // Where the next undelivered event of _eventFrame starts (a bus message may hold several events).
    private int _batchOffset;

    private long _probeSequence;
    private long _malformed;
    private long _received;
    private long _lostInTransit;
    private int _disposed;

    private ZmqEventSubscriber(SubscriberSocket socket, string endpoint, ZmqEventSubscriberOptions options, NetMQMonitor? monitor)
    {
        _monitor = monitor;
        _socket = socket;
        _options = options;
        Endpoint = endpoint;
        _codec = new OnexEventCodec(options.Socket.CodecLimits);
        _logger = options.LoggerFactory?.CreateLogger<ZmqEventSubscriber>() ?? NullLogger<ZmqEventSubscriber>.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _unsubscribe = UnsubscribeAsync;
        _topicFrame.InitEmpty();
        _eventFrame.InitEmpty();
        _sequenceFrame.InitEmpty();
        _socket.ReceiveReady += (_, _) => OnReceiveReady();
        _poller = new NetMQPoller { _socket };
        if (monitor is not null && options.Health is { } health)
        {
            monitor.Connected += (_, args) => health.SetState(BusConnectionState.Connected, $"connected to {Endpoint}");
            monitor.Disconnected += (_, args) =>
                health.SetState(BusConnectionState.Disconnected, $"lost the connection to {Endpoint}; ZeroMQ reconnects, events sent meanwhile are lost");
            monitor.AttachToPoller(_poller);
        }
        _poller.RunAsync($"onex-sub {endpoint}", isBackgroundThread: true);
    }

    /// <summary>The endpoint the SUB socket is connected to.</summary>
    public string Endpoint { get => Volatile.Read(ref _endpoint); private set => Volatile.Write(ref _endpoint, value); }

    private string _endpoint = "";

    /// <summary>
    /// Connects the SUB socket to <paramref name="endpoint"/> instead (the bus moved): its filters go to the new peer,
    /// and sequence tracking carries on, so what publishers sent while the path was down is counted as lost. With
    /// <paramref name="curveServerKey"/> (the host came back with new CURVE keys) it reconnects encrypting to that key,
    /// to the same endpoint too.
    /// </summary>
    internal Task MoveToAsync(string endpoint, string? curveServerKey = null)
    {
        ZmqEndpoints.EnsureValid(endpoint, nameof(endpoint));
        return OnPollerAsync(() =>
        {
            if (ZmqEndpoints.MoveConnection(_socket, Endpoint, endpoint, curveServerKey)) Endpoint = endpoint;
        });
    }

    /// <summary>Messages dropped because they were malformed (see the remarks on <see cref="ZmqEventSubscriber"/>).</summary>
    public long MalformedCount => Interlocked.Read(ref _malformed);

    /// <summary>
    /// Events of bus participants that never arrived, inferred from jumps in their per-topic sequence numbers (a
    /// high-water mark, or a connection that was down); also counted in the health as <see cref="DropCause.Transport"/>.
    /// </summary>
    public long LostInTransitCount => Interlocked.Read(ref _lostInTransit);

    /// <summary>Events received and decoded (before pattern matching and queueing).</summary>
    public long ReceivedCount => Interlocked.Read(ref _received);

    /// <summary>
    /// Connects a SUB socket to <paramref name="endpoint"/>. ZeroMQ connects in the background and reconnects on its
    /// own (re-sending every filter) when the peer restarts, so this does not wait for the peer.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range, or the endpoint is not a ZeroMQ endpoint.</exception>
    public static ZmqEventSubscriber Connect(string endpoint, ZmqEventSubscriberOptions? options = null)
    {
        ZmqEndpoints.EnsureValid(endpoint, nameof(endpoint));
        options ??= ZmqEventSubscriberOptions.Default;
        options.Validate();
        var socket = new SubscriberSocket();
        NetMQMonitor? monitor = null;
        try
        {
            options.Socket.ApplyTo(socket);
            // Set up before connecting, so the first connect is seen too. An inproc:// peer is this process: nothing to watch.
            if (options.Health is not null && !endpoint.StartsWith("inproc://", StringComparison.Ordinal))
                monitor = new NetMQMonitor(socket, $"inproc://onex-sub-monitor-{Guid.NewGuid():N}", SocketEvents.Connected | SocketEvents.Disconnected);
            socket.Connect(endpoint);
            return new ZmqEventSubscriber(socket, endpoint, options, monitor);
        }
        catch
        {
            monitor?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Subscribes to <paramref name="pattern"/> (syntax in <see cref="Topic"/>). With a
    /// <see cref="ZmqEventSubscriberOptions.ProbePublisher"/>, completes once the subscription is confirmed live end to
    /// end; without one, once the filter is set on the socket.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="pattern"/> is not a valid pattern.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' capacity is less than 1.</exception>
    /// <exception cref="UnavailableException">No probe came back within the handshake timeout (code UNAVAILABLE).</exception>
    /// <exception cref="ObjectDisposedException">This subscriber was disposed.</exception>
    public async ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        var channel = new EventChannel(pattern, options, _unsubscribe, _options.Health,
            _options.PauseWhenFull ? System.Threading.Channels.BoundedChannelFullMode.Wait : System.Threading.Channels.BoundedChannelFullMode.DropNewest);
        var filter = Encoding.ASCII.GetBytes(Topic.LiteralPrefix(channel.Pattern));
        await OnPollerAsync(() =>
        {
            _routes.Add(channel);
            AddFilter(filter);
        }).ConfigureAwait(false);

        if (_options.ProbePublisher is null) return channel;
        try
        {
            await ConfirmPathAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return channel;
    }

    /// <summary>
    /// Completes every subscription (pending reads finish after the queued events), stops the poller thread and
    /// closes the socket. Idempotent.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return ValueTask.CompletedTask;
        _disposing.Cancel();
        _poller.Stop();
        // The poller has stopped: this thread owns the routes and probes now.
        foreach (var channel in _routes) channel.TryComplete();
        _routes.Clear();
        foreach (var probe in _probes.Values) probe.TrySetException(new ObjectDisposedException(ToString()));
        _probes.Clear();
        if (_monitor is not null)
        {
            try
            {
                _monitor.DetachFromPoller();
            }
            catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
            {
                // The poller is stopped; the monitor's socket goes with it below.
            }
            _monitor.Dispose();
        }
        _poller.Dispose();
        _socket.Dispose();
        _topicFrame.Close();
        _eventFrame.Close();
        _sequenceFrame.Close();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public override string ToString() => $"ZmqEventSubscriber({Endpoint})";

    /// <summary>
    /// Proves that messages from the probe publisher reach this subscriber through every filter set so far: subscribes
    /// to a fresh probe topic, publishes probes on it (at growing intervals) until one arrives, then drops the filter.
    /// Used for each new subscription and, by the bus, to prove a participant's publish path at start.
    /// </summary>
    /// <exception cref="UnavailableException">No probe came back within the handshake timeout.</exception>
    internal async ValueTask ConfirmPathAsync(CancellationToken cancellationToken)
    {
        var publisher = _options.ProbePublisher ?? throw new InvalidOperationException("No probe publisher is configured.");
        var topicBytes = ZmqControl.ProbeTopic(_id, Interlocked.Increment(ref _probeSequence));
        var topic = Encoding.ASCII.GetString(topicBytes);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await OnPollerAsync(() =>
        {
            _probes[topic] = arrived;
            _socket.Subscribe(topicBytes);
        }).ConfigureAwait(false);

        var started = _time.GetTimestamp();
        var interval = FirstProbeInterval;
        var probes = 0;
        try
        {
            while (true)
            {
                publisher.PublishControl(topicBytes);
                probes++;
                var remaining = _options.HandshakeTimeout - _time.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero) break;
                if (await ArrivesWithinAsync(arrived.Task, remaining < interval ? remaining : interval, cancellationToken).ConfigureAwait(false))
                {
                    _logger.PathConfirmed(Endpoint, probes, _time.GetElapsedTime(started).TotalMilliseconds);
                    return;
                }
                interval = interval * 2 < MaxProbeInterval ? interval * 2 : MaxProbeInterval;
            }
        }
        finally
        {
            await TryOnPollerAsync(() =>
            {
                _probes.Remove(topic);
                _socket.Unsubscribe(topicBytes);
            }).ConfigureAwait(false);
        }

        var elapsed = _time.GetElapsedTime(started);
        _logger.PathNotConfirmed(Endpoint, probes, elapsed.TotalMilliseconds);
        throw new UnavailableException(
            $"No probe came back through {Endpoint} within {_options.HandshakeTimeout.TotalSeconds:0.###} s ({probes} sent): " +
            "is the bus's forwarder running, and are the publish and subscribe endpoints those of the same bus? " +
            (_options.Socket.CurveServerKey is null
                ? "If the bus encrypts (its registration's metadata has curveServerKey), set ZmqSocketOptions.CurveServerKey to that key."
                : $"With CURVE on: is {_options.Socket.CurveServerKey} the forwarder's public key?"),
            new Dictionary<string, string>
            {
                ["endpoint"] = Endpoint,
                ["probes"] = probes.ToString(),
                ["timeoutMs"] = ((long)_options.HandshakeTimeout.TotalMilliseconds).ToString(),
            });
    }

    private async ValueTask<bool> ArrivesWithinAsync(Task arrival, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await arrival.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async ValueTask UnsubscribeAsync(EventChannel channel)
    {
        var filter = Encoding.ASCII.GetBytes(Topic.LiteralPrefix(channel.Pattern));
        // After disposal the socket and all its filters are gone already: nothing left to undo.
        await TryOnPollerAsync(() =>
        {
            if (_routes.Remove(channel)) RemoveFilter(filter);
        }).ConfigureAwait(false);
    }

    // Filters are reference-counted here so that ZeroMQ sees one subscribe per distinct prefix and one unsubscribe
    // when its last subscription goes.
    private void AddFilter(byte[] filter)
    {
        var key = Encoding.ASCII.GetString(filter);
        _filterCounts.TryGetValue(key, out var count);
        _filterCounts[key] = count + 1;
        if (count == 0) _socket.Subscribe(filter);
    }

    private void RemoveFilter(byte[] filter)
    {
        var key = Encoding.ASCII.GetString(filter);
        if (!_filterCounts.TryGetValue(key, out var count)) return;
        if (count > 1)
        {
            _filterCounts[key] = count - 1;
            return;
        }
        _filterCounts.Remove(key);
        _socket.Unsubscribe(filter);
        // What this filter let through stops arriving: a later message would look like a gap.
        _expected.Clear();
    }

    private void OnReceiveReady()
    {
        try
        {
            for (var i = 0; i < ReceiveBatch && !_paused; i++)
            {
                if (!_socket.TryReceive(ref _topicFrame, TimeSpan.Zero)) return;
                if (!_topicFrame.HasMore)
                {
                    CountMalformed("a single frame; expected [topic][event]");
                    continue;
                }
                // Multipart messages arrive whole, so the remaining frames are already here.
                _socket.TryReceive(ref _eventFrame, SendReceiveConstants.InfiniteTimeout);
                _numbered = false;
                if (_eventFrame.HasMore)
                {
                    _socket.TryReceive(ref _sequenceFrame, SendReceiveConstants.InfiniteTimeout);
                    if (_sequenceFrame.HasMore || _sequenceFrame.Size != ZmqControl.SequenceFrameBytes)
                    {
                        var frames = 3;
                        while (_sequenceFrame.HasMore)
                        {
                            _socket.TryReceive(ref _sequenceFrame, SendReceiveConstants.InfiniteTimeout);
                            frames++;
                        }
                        CountMalformed($"{frames} frames; expected [topic][event] or [topic][events][sequence]");
                        continue;
                    }
                    var sequence = _sequenceFrame.Slice();
                    _sequencePublisher = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(sequence);
                    _sequenceFirst = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(sequence[8..]);
                    _sequenceEvents = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(sequence[16..]);
                    _numbered = true;
                }
                HandleMessage();
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.ReceiveFailed(Endpoint, ex);
        }
    }

    private void HandleMessage()
    {
        var topic = _topicFrame.Slice();
        if (topic.Length > 0 && topic[0] == ZmqControl.Marker)
        {
            HandleControl(topic);
            return;
        }
        if (_eventFrame.Size == 0)
        {
            CountMalformed("an empty event frame");
            return;
        }
        _batchOffset = 0;
        DeliverBatch();
    }

    /// <summary>
    /// Decodes and delivers the events of the current message from <see cref="_batchOffset"/> on (a bus message holds
    /// one or more events of its topic). Returns early when a full Wait-mode queue pauses reading; the socket is not
    /// read meanwhile, so both frames stay as they are and the resume picks up at the next event. A malformed event
    /// drops the rest of its message.
    /// </summary>
    private void DeliverBatch()
    {
        var events = _eventFrame.SliceAsMemory();
        while (_batchOffset < events.Length)
        {
            OnexEvent evt;
            try
            {
                evt = _codec.DecodeNext(events[_batchOffset..], out var consumed);
                _batchOffset += consumed;
            }
            catch (OnexException ex)
            {
                _batchOffset = events.Length;
                CountMalformed($"{ex.Code}: {ex.Message}");
                return;
            }
            var topic = _topicFrame.Slice();
            if (!System.Text.Ascii.Equals(topic, evt.Topic))
            {
                _batchOffset = events.Length;
                CountMalformed($"topic frame '{Encoding.ASCII.GetString(topic)}' differs from the event's topic '{evt.Topic}'");
                return;
            }
            if (_numbered)
            {
                // Once per message, at its first event.
                _numbered = false;
                CheckSequence(evt.Topic);
            }
            Interlocked.Increment(ref _received);
            if (!Deliver(evt)) return;
        }
    }

    /// <summary>
    /// Compares the current message's sequence with what this publisher's previous message on the topic promised; a
    /// jump is events lost on the way (counted as <see cref="DropCause.Transport"/>). Going backwards is a publisher
    /// that started its numbering over: no loss is inferred.
    /// </summary>
    private void CheckSequence(string topic)
    {
        var key = (_sequencePublisher, topic);
        if (_expected.TryGetValue(key, out var expected) && _sequenceFirst > expected)
        {
            var lost = _sequenceFirst - expected;
            Interlocked.Add(ref _lostInTransit, lost);
            _options.Health?.CountDropped(DropCause.Transport, lost, null,
                $"{lost} events of topic '{topic}' from publisher {_sequencePublisher:x16} never arrived through {Endpoint} (a high-water mark, or a connection that was down)");
        }
        else if (!_expected.ContainsKey(key) && _expected.Count >= MaxTrackedTopics)
        {
            _expected.Clear();
        }
        _expected[key] = _sequenceFirst + _sequenceEvents;
    }

    private void HandleControl(ReadOnlySpan<byte> topic)
    {
        // Other participants' probes reach subscriptions with an empty filter (pattern '>'); only our own count.
        if (_probes.Count == 0) return;
        if (_probes.Remove(Encoding.ASCII.GetString(topic), out var probe)) probe.TrySetResult();
    }

    /// <summary>Hands <paramref name="evt"/> to every matching subscription; false when that paused reading.</summary>
    private bool Deliver(OnexEvent evt)
    {
        for (var i = 0; i < _routes.Count; i++)
        {
            var route = _routes[i];
            if (!route.Matches(evt.Topic) || route.TryWrite(evt) || route.IsCompleted) continue;
            if (!_options.PauseWhenFull)
            {
                // A bus participant never pauses for one subscription: this one loses the event, and is told.
                route.CountDropped(1);
                continue;
            }

            // A Wait-mode queue is full: everyone after it gets the event first, then reading pauses until the full
            // queues have taken it, in order.
            List<EventChannel> full = [route];
            for (var j = i + 1; j < _routes.Count; j++)
            {
                var other = _routes[j];
                if (other.Matches(evt.Topic) && !other.TryWrite(evt) && !other.IsCompleted) full.Add(other);
            }
            PauseUntilTaken(evt, full);
            return false;
        }
        return true;
    }

    private void PauseUntilTaken(OnexEvent evt, List<EventChannel> full)
    {
        _paused = true;
        if (_socketPolled) _poller.Remove(_socket);
        _socketPolled = false;
        _logger.ReceivePaused(Endpoint, full[0].Pattern);
        _ = ResumeWhenTakenAsync(evt, full);
    }

    private async Task ResumeWhenTakenAsync(OnexEvent evt, List<EventChannel> full)
    {
        try
        {
            // WriteAsync returns false without throwing when the subscription is disposed meanwhile.
            foreach (var channel in full)
                await channel.WriteAsync(evt).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Not expected; resuming matters more than this one event, which is lost for the remaining full queues.
            _logger.ReceiveFailed(Endpoint, ex);
        }
        await TryOnPollerAsync(() =>
        {
            // The rest of the paused message first; it may pause again. Whatever happens there, reading resumes
            // unless it did: a subscriber must never go deaf.
            _paused = false;
            try
            {
                DeliverBatch();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _logger.ReceiveFailed(Endpoint, ex);
            }
            finally
            {
                if (!_paused)
                {
                    _poller.Add(_socket);
                    _socketPolled = true;
                }
            }
        }).ConfigureAwait(false);
    }

    private void CountMalformed(string reason)
    {
        var count = Interlocked.Increment(ref _malformed);
        if ((count & (count - 1)) == 0) _logger.MalformedMessage(Endpoint, count, reason);
    }

    private async Task OnPollerAsync(Action action)
    {
        if (!await TryOnPollerAsync(action).ConfigureAwait(false))
            throw new ObjectDisposedException(ToString());
    }

    /// <summary>Runs <paramref name="action"/> on the poller thread; false when this subscriber was disposed first.</summary>
    private async Task<bool> TryOnPollerAsync(Action action)
    {
        if (Volatile.Read(ref _disposed) != 0) return false;
        var task = new Task(action);
        try
        {
            task.Start(_poller);
        }
        catch (Exception ex) when (ex is TaskSchedulerException or ObjectDisposedException)
        {
            // The poller was disposed between the check above and the start.
            return false;
        }
        try
        {
            // A task queued just as the poller stops never runs: disposal releases its waiter.
            await task.WaitAsync(_disposing.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (_disposing.IsCancellationRequested)
        {
            return false;
        }
    }
}
