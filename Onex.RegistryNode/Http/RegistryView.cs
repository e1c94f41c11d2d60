using System.Collections.Immutable;
using System.Threading.Channels;
using MessagePack;
using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Metrics;

namespace Onex.RegistryNode.Http;

/// <summary>
/// The HTTP side's copy of the registry state, kept off the registry thread the way any subscriber keeps one (the
/// Clone pattern, in process): committed broadcasts arrive through <see cref="IChangeSink"/> on the registry thread
/// and are only queued there (bounded); they are applied in sequence order to immutable maps, with a resync by
/// snapshot on a gap, an overflow or a new epoch, and every change is fanned out to the Server-Sent-Events clients.
/// Readers take <see cref="Current"/>, an immutable value: nothing here ever locks or waits on the registry thread.
/// </summary>
/// <remarks>
/// The view follows on demand, not per change: a reader of <see cref="Current"/> or <see cref="LastHeartbeat"/> (an
/// HTTP request, a scrape of the gauges) first applies whatever is queued, on its own thread. The view's task is woken
/// only to resync, for every change while some SSE client follows <c>/api/changes</c>, and once per
/// <see cref="DrainEvery"/> changes otherwise (so the queue never fills while nobody reads). Waking a thread-pool
/// reader for every change cost a lease+release benchmark about 15% of its throughput with nobody watching (most of it
/// thread-pool workers spinning for the next item). What readers see is unchanged: the state as of the latest change
/// applied, in sequence order, never a skipped change.
/// </remarks>
internal sealed partial class RegistryView : IChangeSink, IAsyncDisposable
{
    /// <summary>Broadcasts queued between the registry thread and the view; past this the view resyncs by snapshot.</summary>
    public const int FeedCapacity = 65_536;

    /// <summary>With no SSE client connected, the view's task is woken once per this many queued broadcasts.</summary>
    public const int DrainEvery = 1_024;

    /// <summary>Events queued for one SSE client; a client further behind is disconnected.</summary>
    public const int ClientBufferEvents = 1_024;

    /// <summary>SSE clients at once; more are refused with 503.</summary>
    public const int MaxClients = 64;

    // Read under _gate by whichever thread catches up (so SingleReader is false: the readers take turns).
    private readonly Channel<object> _feed = Channel.CreateBounded<object>(new BoundedChannelOptions(FeedCapacity)
    {
        SingleReader = false, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly Func<CancellationToken, Task<RegistrySnapshot>> _takeSnapshot;
    private readonly RegistryMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new(); // orders applying, client joins and fan-out; never taken by the registry thread
    private readonly SemaphoreSlim _wake = new(0);
    private readonly List<ChangeStreamClient> _clients = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;
    private int _overflowed;
    private int _woken; // 1 while a wake-up is pending (so the registry thread releases the semaphore once per wake-up)
    private int _following; // SSE clients connected, read by the registry thread
    private int _queuedSinceWake; // registry thread only
    private string? _resync; // why the view must resync before applying more; under _gate
    private ViewState? _current;
    private HeartbeatSeen? _heartbeat;

    public RegistryView(Func<CancellationToken, Task<RegistrySnapshot>> takeSnapshot, RegistryMetrics metrics, TimeProvider time, ILogger logger)
    {
        _takeSnapshot = takeSnapshot;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    /// <summary>The state as of the latest change applied (queued ones are applied first); null before the first snapshot.</summary>
    public ViewState? Current
    {
        get
        {
            CatchUp();
            return Volatile.Read(ref _current);
        }
    }

    /// <summary>The latest heartbeat heard and when (the view's clock, when the registry sent it); null before the first.</summary>
    public HeartbeatSeen? LastHeartbeat
    {
        get
        {
            CatchUp();
            return Volatile.Read(ref _heartbeat);
        }
    }

    /// <summary>Completes when the first snapshot is in.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Starts applying broadcasts (takes the first snapshot).</summary>
    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token));

    // Called on the registry thread: queue only, never block.
    void IChangeSink.Publish(RegistryChange change) => Enqueue(change);

    // Stamped here, so a heartbeat applied later still shows when the registry sent it.
    void IChangeSink.Publish(RegistryHeartbeat heartbeat) => Enqueue(new HeartbeatSeen(heartbeat, _time.GetTimestamp()));

    private void Enqueue(object item)
    {
        if (!_feed.Writer.TryWrite(item)) Volatile.Write(ref _overflowed, 1);
        if (Volatile.Read(ref _following) > 0 || ++_queuedSinceWake >= DrainEvery)
        {
            _queuedSinceWake = 0;
            Wake();
        }
    }

    private void Wake()
    {
        if (Interlocked.Exchange(ref _woken, 1) == 0) _wake.Release();
    }

    /// <summary>
    /// Joins an SSE client: it gets the current state as its first event, then every later change, in order.
    /// Null when <see cref="MaxClients"/> are connected or the view has no state yet.
    /// </summary>
    public ChangeStreamClient? Join(string? changeTypePrefix)
    {
        lock (_gate)
        {
            CatchUpLocked();
            var state = _current;
            if (state is null || _clients.Count >= MaxClients) return null;
            var client = new ChangeStreamClient(changeTypePrefix, ClientBufferEvents);
            client.Offer(ChangeStreamEvent.Snapshot(state.SnapshotJson));
            _clients.Add(client);
            Volatile.Write(ref _following, _clients.Count);
            return client;
        }
    }

    /// <summary>Removes a client (it disconnected).</summary>
    public void Leave(ChangeStreamClient client)
    {
        lock (_gate)
        {
            _clients.Remove(client);
            Volatile.Write(ref _following, _clients.Count);
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await ResyncAsync("initial", ct).ConfigureAwait(false);
            _synced.TrySetResult();
            while (true)
            {
                CatchUp();
                string? reason;
                lock (_gate) reason = _resync;
                if (reason is not null)
                {
                    await ResyncAsync(reason, ct).ConfigureAwait(false);
                    continue;
                }
                await _wake.WaitAsync(ct).ConfigureAwait(false);
                Volatile.Write(ref _woken, 0);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // stopping
        }
        catch (Exception ex)
        {
            // The registry stopped under a snapshot request, or a bug: the view stays as it was; readiness says so.
            LogViewFailed(ex);
            _synced.TrySetException(ex);
        }
        finally
        {
            lock (_gate)
            {
                foreach (var client in _clients) client.Close();
                _clients.Clear();
                Volatile.Write(ref _following, 0);
            }
        }
    }

    /// <summary>Applies every queued broadcast, in order, on the calling thread (stops at the first that needs a resync).</summary>
    private void CatchUp()
    {
        lock (_gate) CatchUpLocked();
    }

    private void CatchUpLocked()
    {
        if (_current is null || _resync is not null) return; // the view's task is (re)syncing
        var reader = _feed.Reader;
        // Everything queued is applied to one editor and becomes one new version at the end: readers only ever see the
        // version after the whole batch, and a version per change cost an allocation of every tree path it touched.
        ViewState.Editor? editor = null;
        try
        {
            while (true)
            {
                if (Interlocked.Exchange(ref _overflowed, 0) != 0) _resync = "the feed overflowed";
                else if (!reader.TryRead(out var item)) return;
                else
                {
                    _resync = item switch
                    {
                        RegistryChange change => Apply(editor ??= _current.Edit(), change),
                        HeartbeatSeen heartbeat => Heard(editor ?? (IViewPosition)_current, heartbeat),
                        _ => null,
                    };
                }
                if (_resync is not null)
                {
                    Wake(); // the view's task takes the snapshot (never a reader: it must not wait on the registry thread)
                    return;
                }
            }
        }
        finally
        {
            if (editor is { Changed: true }) Volatile.Write(ref _current, editor.ToState());
        }
    }

    /// <summary>Applies one change; returns why a resync is needed, or null.</summary>
    private string? Apply(ViewState.Editor state, RegistryChange change)
    {
        if (change.Epoch != state.Epoch) return "a new epoch";
        if (change.Sequence <= state.Sequence) return null; // in the snapshot already
        if (change.Sequence != state.Sequence + 1) return $"a gap ({state.Sequence} then {change.Sequence})";
        if (!state.TryApply(change)) return $"a change it cannot apply ({change.ChangeType})";
        // The JSON is made only when some client follows /api/changes: a node serving HTTP with nobody watching spent
        // a serialisation and a JSON conversion per change here (with metrics scraped, about 18% of lease throughput).
        FanOutLocked(() => ChangeStreamEvent.Change(change.ChangeType, Json(change)));
        return null;
    }

    private string? Heard(IViewPosition state, HeartbeatSeen seen)
    {
        Volatile.Write(ref _heartbeat, seen);
        var heartbeat = seen.Heartbeat;
        FanOutLocked(() => ChangeStreamEvent.Heartbeat(Json(heartbeat)));
        return heartbeat.Epoch != state.Epoch ? "a new epoch"
            : heartbeat.Sequence > state.Sequence ? $"a heartbeat ahead ({heartbeat.Sequence} > {state.Sequence})"
            : null;
    }

    private async Task ResyncAsync(string reason, CancellationToken ct)
    {
        var snapshot = await _takeSnapshot(ct).ConfigureAwait(false);
        var state = ViewState.Of(snapshot);
        LogResynced(reason, state.Epoch, state.Sequence);
        lock (_gate)
        {
            _resync = null;
            Publish(state, () => ChangeStreamEvent.Snapshot(state.SnapshotJson));
        }
    }

    // Under _gate.
    private void Publish(ViewState state, Func<ChangeStreamEvent> evt)
    {
        Volatile.Write(ref _current, state);
        FanOutLocked(evt);
    }

    /// <summary>Offers the event, made only if some client is connected, to every client.</summary>
    private void FanOutLocked(Func<ChangeStreamEvent> make)
    {
        if (_clients.Count == 0) return;
        var evt = make();
        for (var i = _clients.Count - 1; i >= 0; i--)
        {
            if (_clients[i].Offer(evt)) continue;
            // Behind by a whole buffer: disconnected, so it reconnects and starts again from a snapshot.
            _clients[i].Close();
            _clients.RemoveAt(i);
            _metrics.SseDropped();
        }
        Volatile.Write(ref _following, _clients.Count);
    }

    internal static string Json<T>(T body) => MessagePackSerializer.ConvertToJson(RegistryCodec.SerializeBody(body));

    public async ValueTask DisposeAsync()
    {
        _feed.Writer.TryComplete();
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose(); // _wake is left to the collector: the registry thread may still release it until detached
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP view resynced by snapshot ({Reason}): epoch {Epoch}, sequence {Sequence}")]
    private partial void LogResynced(string reason, string epoch, long sequence);

    [LoggerMessage(Level = LogLevel.Error, Message = "The HTTP view stopped following the registry")]
    private partial void LogViewFailed(Exception exception);
}

/// <summary>A heartbeat and when the view heard it (<see cref="TimeProvider.GetTimestamp"/>).</summary>
internal sealed record HeartbeatSeen(RegistryHeartbeat Heartbeat, long HeardAt);

/// <summary>Where a version of the view stands: its epoch and the sequence number of its latest change.</summary>
internal interface IViewPosition
{
    string Epoch { get; }
    long Sequence { get; }
}

/// <summary>One immutable version of the view: the state as of <see cref="Sequence"/>.</summary>
internal sealed class ViewState : IViewPosition
{
    private string? _snapshotJson;

    private ViewState(string epoch, long sequence, long takenAt,
        ImmutableSortedDictionary<string, PortLease> leases, ImmutableSortedDictionary<string, NodeRecord> nodes,
        ImmutableSortedDictionary<string, EventBusRecord> buses, ImmutableSortedDictionary<string, ToolContractRecord> tools)
    {
        Epoch = epoch;
        Sequence = sequence;
        TakenAt = takenAt;
        Leases = leases;
        Nodes = nodes;
        Buses = buses;
        Tools = tools;
    }

    public string Epoch { get; }
    public long Sequence { get; }
    public long TakenAt { get; }
    public ImmutableSortedDictionary<string, PortLease> Leases { get; }
    public ImmutableSortedDictionary<string, NodeRecord> Nodes { get; }
    public ImmutableSortedDictionary<string, EventBusRecord> Buses { get; }
    public ImmutableSortedDictionary<string, ToolContractRecord> Tools { get; }

    /// <summary>This version as a <see cref="RegistrySnapshot"/> in JSON (made once, on first use).</summary>
    public string SnapshotJson => _snapshotJson ??= RegistryView.Json(ToSnapshot());

    public RegistrySnapshot ToSnapshot() => new()
    {
        Epoch = Epoch,
        Sequence = Sequence,
        TakenAt = TakenAt,
        Leases = [.. Leases.Values],
        Nodes = [.. Nodes.Values],
        Buses = [.. Buses.Values],
        Tools = [.. Tools.Values],
    };

    public static ViewState Of(RegistrySnapshot snapshot) => new(
        snapshot.Epoch, snapshot.Sequence, snapshot.TakenAt,
        snapshot.Leases.ToImmutableSortedDictionary(l => l.LeaseId, l => l, StringComparer.Ordinal),
        snapshot.Nodes.ToImmutableSortedDictionary(n => n.NodeId, n => n, StringComparer.Ordinal),
        snapshot.Buses.ToImmutableSortedDictionary(b => b.Name, b => b, StringComparer.Ordinal),
        snapshot.Tools.ToImmutableSortedDictionary(Onex.RegistryNode.Tools.ToolCatalog.KeyOf, t => t, StringComparer.Ordinal));

    /// <summary>An editor starting from this version (which it leaves unchanged).</summary>
    public Editor Edit() => new(this);

    /// <summary>
    /// Changes applied in sequence to builders of the maps they touch, made into one new version by
    /// <see cref="ToState"/> (a builder changes the tree nodes it created in place, so a batch allocates far less than
    /// a version per change).
    /// </summary>
    public sealed class Editor : IViewPosition
    {
        private readonly ViewState _start;
        private ImmutableSortedDictionary<string, PortLease>.Builder? _leases;
        private ImmutableSortedDictionary<string, NodeRecord>.Builder? _nodes;
        private ImmutableSortedDictionary<string, EventBusRecord>.Builder? _buses;
        private ImmutableSortedDictionary<string, ToolContractRecord>.Builder? _tools;
        private long _takenAt;

        public Editor(ViewState start)
        {
            _start = start;
            _takenAt = start.TakenAt;
            Sequence = start.Sequence;
        }

        public string Epoch => _start.Epoch;
        public long Sequence { get; private set; }

        /// <summary>True once a change was applied.</summary>
        public bool Changed { get; private set; }

        /// <summary>Applies <paramref name="change"/>; false (and nothing changed) when it names no entity.</summary>
        public bool TryApply(RegistryChange change)
        {
            var entity = change.NewValue ?? change.OldValue;
            if (entity is null) return false;
            var value = change.NewValue;
            if (entity.Lease is not null) Set(_leases ??= _start.Leases.ToBuilder(), change.Key, value?.Lease);
            else if (entity.Node is not null) Set(_nodes ??= _start.Nodes.ToBuilder(), change.Key, value?.Node);
            else if (entity.Bus is not null) Set(_buses ??= _start.Buses.ToBuilder(), change.Key, value?.Bus);
            else if (entity.Tool is not null) Set(_tools ??= _start.Tools.ToBuilder(), change.Key, value?.Tool);
            else return false;
            Sequence = change.Sequence;
            _takenAt = change.Timestamp;
            Changed = true;
            return true;
        }

        private static void Set<T>(ImmutableSortedDictionary<string, T>.Builder map, string key, T? value) where T : class
        {
            if (value is null) map.Remove(key);
            else map[key] = value;
        }

        /// <summary>The version with every change applied (the starting one when none was).</summary>
        public ViewState ToState() => !Changed ? _start : new ViewState(
            _start.Epoch, Sequence, _takenAt,
            _leases?.ToImmutable() ?? _start.Leases, _nodes?.ToImmutable() ?? _start.Nodes,
            _buses?.ToImmutable() ?? _start.Buses, _tools?.ToImmutable() ?? _start.Tools);
    }
}
