using System.Net.Sockets;

namespace Onex.Transports.Ipc;

/// <summary>
/// The bounded queue of frames waiting to be written to one connection, and the pump that writes them in order.
/// The pump starts on the thread that enqueues into an idle queue, so the common case (the socket buffer has room)
/// writes inline without a thread hop; when the socket cannot take more it continues asynchronously and later
/// frames queue up behind it, so a slow peer never blocks the enqueuer beyond its own choice to wait.
/// Frames queued together go out in one vectored send. DROPPED notices for events the owner could not queue are
/// accumulated here and go out in order, where the drops happened: ahead of the next frame queued after them, or after
/// the last queued frame (a subscriber uses that position to tell reported drops from a gap in the numbers). They do
/// not count against the capacity.
/// </summary>
internal sealed class IpcOutboundQueue
{
    private const int MaxBatchFrames = 64;
    private const int MaxBatchBytes = 256 * 1024;
    // Inline pumping yields to the thread pool after this many batches, so an enqueuer is not kept busy forever.
    private const int InlineBatchBudget = 16;

    private readonly Socket _socket;
    private readonly int _capacity;
    private readonly Action<Exception> _onFailure;
    private readonly object _gate = new();
    private readonly Queue<byte[]> _frames = new();
    private readonly List<ArraySegment<byte>> _batch = new(MaxBatchFrames);
    private Dictionary<uint, long>? _pendingDrops;
    private TaskCompletionSource? _roomAvailable;
    private TaskCompletionSource? _drained;
    private bool _pumping;
    private bool _closed;

    /// <param name="socket">The connected socket frames are written to.</param>
    /// <param name="capacity">Frames held before <see cref="TryEnqueue"/> refuses and <see cref="EnqueueAsync"/> waits.</param>
    /// <param name="onFailure">Called once when a write fails; the queue is closed by then.</param>
    public IpcOutboundQueue(Socket socket, int capacity, Action<Exception> onFailure)
    {
        _socket = socket;
        _capacity = capacity;
        _onFailure = onFailure;
    }

    /// <summary>True once <see cref="Close"/> ran or a write failed.</summary>
    public bool IsClosed
    {
        get { lock (_gate) return _closed; }
    }

    /// <summary>Queues <paramref name="frame"/> unless the queue is full or closed.</summary>
    public bool TryEnqueue(byte[] frame)
    {
        lock (_gate)
        {
            if (_closed || _frames.Count >= _capacity) return false;
            Append(frame);
            if (_pumping) return true;
            _pumping = true;
        }
        StartPump();
        return true;
    }

    /// <summary>
    /// Queues <paramref name="frame"/>, waiting for room. Returns false without throwing when the queue is or becomes
    /// closed (the connection is gone: the frame is lost, which at-most-once delivery allows). With
    /// <paramref name="numbering"/>, an event frame of <paramref name="topic"/> is numbered the moment it is accepted,
    /// so numbers follow the queue's order and a refused frame takes none.
    /// </summary>
    public ValueTask<bool> EnqueueAsync(byte[] frame, CancellationToken cancellationToken, IpcEventNumbering? numbering = null, string? topic = null)
    {
        Task room;
        lock (_gate)
        {
            if (_closed) return new ValueTask<bool>(false);
            if (_frames.Count < _capacity)
            {
                numbering?.Stamp(frame, topic!);
                Append(frame);
                if (_pumping) return new ValueTask<bool>(true);
                _pumping = true;
                room = Task.CompletedTask;
            }
            else
            {
                room = (_roomAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
        }
        if (room.IsCompleted)
        {
            StartPump();
            return new ValueTask<bool>(true);
        }
        return WaitAndEnqueueAsync(room, frame, numbering, topic, cancellationToken);
    }

    /// <summary>
    /// Queues <paramref name="frame"/> beyond the capacity (control frames such as ERROR and SUBSCRIBED are not
    /// refused for lack of room), up to <paramref name="backlogLimit"/> frames in all. Returns false when the queue is
    /// closed or already holds that many frames.
    /// </summary>
    public bool EnqueueControl(byte[] frame, int backlogLimit = int.MaxValue)
    {
        lock (_gate)
        {
            if (_closed || _frames.Count >= backlogLimit) return false;
            Append(frame);
            if (_pumping) return true;
            _pumping = true;
        }
        StartPump();
        return true;
    }

    /// <summary>Counts one event that could not be queued for <paramref name="subscriptionId"/>; the peer is told in a DROPPED frame.</summary>
    public void RecordDrop(uint subscriptionId)
    {
        lock (_gate)
        {
            if (_closed) return;
            _pendingDrops ??= new Dictionary<uint, long>();
            _pendingDrops[subscriptionId] = _pendingDrops.GetValueOrDefault(subscriptionId) + 1;
            if (_pumping) return;
            _pumping = true;
        }
        StartPump();
    }

    /// <summary>Completes once everything queued so far has been written, or the queue closed; false on timeout.</summary>
    public async Task<bool> DrainAsync(TimeSpan timeout, TimeProvider timeProvider)
    {
        Task drained;
        lock (_gate)
        {
            if (_closed || (!_pumping && _frames.Count == 0)) return true;
            drained = (_drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
        try
        {
            await drained.WaitAsync(timeout, timeProvider).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// Stops accepting frames, discards what is queued and releases every waiter. Idempotent. Returns how many event
    /// frames (PUBLISH or EVENT) were discarded by this call, for the owner to count as lost.
    /// </summary>
    public int Close()
    {
        TaskCompletionSource? room, drained;
        var discardedEvents = 0;
        lock (_gate)
        {
            if (_closed) return 0;
            _closed = true;
            foreach (var frame in _frames)
                if (frame[IpcFrames.HeaderBytes - 1] is (byte)IpcFrameType.Publish or (byte)IpcFrameType.Event) discardedEvents++;
            _frames.Clear();
            _pendingDrops = null;
            room = _roomAvailable;
            drained = _drained;
            _roomAvailable = _drained = null;
        }
        room?.TrySetResult();
        drained?.TrySetResult();
        return discardedEvents;
    }

    private async ValueTask<bool> WaitAndEnqueueAsync(Task room, byte[] frame, IpcEventNumbering? numbering, string? topic, CancellationToken cancellationToken)
    {
        while (true)
        {
            await room.WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                if (_closed) return false;
                if (_frames.Count < _capacity)
                {
                    numbering?.Stamp(frame, topic!);
                    Append(frame);
                    if (_pumping) return true;
                    _pumping = true;
                    break;
                }
                room = (_roomAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
        }
        StartPump();
        return true;
    }

    private void StartPump()
    {
        // The pump handles its own failures; the task is deliberately not awaited by the enqueuer.
        _ = PumpAsync();
    }

    private async Task PumpAsync()
    {
        var inlineBatches = 0;
        try
        {
            while (true)
            {
                TaskCompletionSource? room = null;
                TaskCompletionSource? drained = null;
                lock (_gate)
                {
                    if (_closed || (_frames.Count == 0 && _pendingDrops is null))
                    {
                        _pumping = false;
                        drained = _drained;
                        _drained = null;
                    }
                    else
                    {
                        TakeBatch();
                        if (_frames.Count < _capacity)
                        {
                            room = _roomAvailable;
                            _roomAvailable = null;
                        }
                    }
                }
                room?.TrySetResult();
                if (drained is not null || _batch.Count == 0)
                {
                    drained?.TrySetResult();
                    return;
                }

                if (++inlineBatches > InlineBatchBudget)
                {
                    inlineBatches = 0;
                    await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
                }
                if (_batch.Count == 1)
                    await _socket.SendAsync(_batch[0].AsMemory(), SocketFlags.None).ConfigureAwait(false);
                else
                    await _socket.SendAsync(_batch, SocketFlags.None).ConfigureAwait(false);
                _batch.Clear();
            }
        }
        catch (Exception ex)
        {
            // Usually the peer went away (SocketException, ObjectDisposedException); whatever it was, this connection
            // cannot be written any more, and a pump that died silently would leave the queue stuck.
            _batch.Clear();
            Close();
            lock (_gate) _pumping = false;
            _onFailure(ex);
        }
    }

    // Called under _gate: queues a frame behind the DROPPED notices for drops recorded since the last frame.
    private void Append(byte[] frame)
    {
        QueuePendingDrops();
        _frames.Enqueue(frame);
    }

    // Called under _gate. At most one DROPPED frame per subscription each time, so the backlog stays bounded.
    private void QueuePendingDrops()
    {
        if (_pendingDrops is null) return;
        foreach (var (id, count) in _pendingDrops)
            _frames.Enqueue(IpcFrames.Dropped(id, count));
        _pendingDrops = null;
    }

    // Called under _gate: moves queued frames into _batch; drops recorded after the last queued frame go out after it.
    private void TakeBatch()
    {
        if (_frames.Count == 0) QueuePendingDrops();
        var bytes = 0;
        while (_batch.Count < MaxBatchFrames && bytes < MaxBatchBytes && _frames.TryDequeue(out var frame))
        {
            _batch.Add(frame);
            bytes += frame.Length;
        }
    }
}
