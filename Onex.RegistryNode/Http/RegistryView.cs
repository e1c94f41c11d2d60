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
/// and are only queued there (bounded); a task of its own applies them in sequence order to immutable maps, resyncs by
/// snapshot on a gap, an overflow or a new epoch, and fans every change out to the Server-Sent-Events clients.
/// Readers take <see cref="Current"/>, an immutable value: nothing here ever locks or waits on the registry thread.
/// </summary>
internal sealed partial class RegistryView : IChangeSink, IAsyncDisposable
{
    /// <summary>Broadcasts queued between the registry thread and the view; past this the view resyncs by snapshot.</summary>
    public const int FeedCapacity = 65_536;

    /// <summary>Events queued for one SSE client; a client further behind is disconnected.</summary>
    public const int ClientBufferEvents = 1_024;

    /// <summary>SSE clients at once; more are refused with 503.</summary>
    public const int MaxClients = 64;

    private readonly Channel<object> _feed = Channel.CreateBounded<object>(new BoundedChannelOptions(FeedCapacity)
    {
        SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly Func<CancellationToken, Task<RegistrySnapshot>> _takeSnapshot;
    private readonly RegistryMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new(); // orders client joins against fan-out; never taken by the registry thread
    private readonly List<ChangeStreamClient> _clients = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;
    private int _overflowed;
    private ViewState? _current;
    private HeartbeatSeen? _heartbeat;

    public RegistryView(Func<CancellationToken, Task<RegistrySnapshot>> takeSnapshot, RegistryMetrics metrics, TimeProvider time, ILogger logger)
    {
        _takeSnapshot = takeSnapshot;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    /// <summary>The state as of the latest change applied; null before the first snapshot.</summary>
    public ViewState? Current => Volatile.Read(ref _current);

    /// <summary>The latest heartbeat heard and when (the view's clock); null before the first.</summary>
    public HeartbeatSeen? LastHeartbeat => Volatile.Read(ref _heartbeat);

    /// <summary>Completes when the first snapshot is in.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Starts applying broadcasts (takes the first snapshot).</summary>
    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token));

    // Called on the registry thread: queue only, never block.
    void IChangeSink.Publish(RegistryChange change) => Enqueue(change);

    void IChangeSink.Publish(RegistryHeartbeat heartbeat) => Enqueue(heartbeat);

    private void Enqueue(object item)
    {
        if (!_feed.Writer.TryWrite(item)) Volatile.Write(ref _overflowed, 1);
    }

    /// <summary>
    /// Joins an SSE client: it gets the current state as its first event, then every later change, in order.
    /// Null when <see cref="MaxClients"/> are connected or the view has no state yet.
    /// </summary>
    public ChangeStreamClient? Join(string? changeTypePrefix)
    {
        lock (_gate)
        {
            var state = Current;
            if (state is null || _clients.Count >= MaxClients) return null;
            var client = new ChangeStreamClient(changeTypePrefix, ClientBufferEvents);
            client.Offer(ChangeStreamEvent.Snapshot(state.SnapshotJson));
            _clients.Add(client);
            return client;
        }
    }

    /// <summary>Removes a client (it disconnected).</summary>
    public void Leave(ChangeStreamClient client)
    {
        lock (_gate) _clients.Remove(client);
    }

    private async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await ResyncAsync("initial", ct).ConfigureAwait(false);
            _synced.TrySetResult();
            var reader = _feed.Reader;
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (reader.TryRead(out var item))
                {
                    if (Interlocked.Exchange(ref _overflowed, 0) != 0)
                    {
                        await ResyncAsync("the feed overflowed", ct).ConfigureAwait(false);
                    }
                    var resync = item switch
                    {
                        RegistryChange change => Apply(change),
                        RegistryHeartbeat heartbeat => Heard(heartbeat),
                        _ => null,
                    };
                    if (resync is not null) await ResyncAsync(resync, ct).ConfigureAwait(false);
                }
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
            }
        }
    }

    /// <summary>Applies one change; returns why a resync is needed, or null.</summary>
    private string? Apply(RegistryChange change)
    {
        var state = Current!;
        if (change.Epoch != state.Epoch) return "a new epoch";
        if (change.Sequence <= state.Sequence) return null; // in the snapshot already
        if (change.Sequence != state.Sequence + 1) return $"a gap ({state.Sequence} then {change.Sequence})";
        var next = state.With(change);
        if (next is null) return $"a change it cannot apply ({change.ChangeType})";
        // The JSON is made only when some client follows /api/changes: a node serving HTTP with nobody watching spent
        // a serialisation and a JSON conversion per change here (with metrics scraped, about 18% of lease throughput).
        Publish(next, () => ChangeStreamEvent.Change(change.ChangeType, Json(change)));
        return null;
    }

    private string? Heard(RegistryHeartbeat heartbeat)
    {
        Volatile.Write(ref _heartbeat, new HeartbeatSeen(heartbeat, _time.GetTimestamp()));
        var state = Current!;
        FanOut(() => ChangeStreamEvent.Heartbeat(Json(heartbeat)));
        return heartbeat.Epoch != state.Epoch ? "a new epoch"
            : heartbeat.Sequence > state.Sequence ? $"a heartbeat ahead ({heartbeat.Sequence} > {state.Sequence})"
            : null;
    }

    private async Task ResyncAsync(string reason, CancellationToken ct)
    {
        var snapshot = await _takeSnapshot(ct).ConfigureAwait(false);
        var state = ViewState.Of(snapshot);
        LogResynced(reason, state.Epoch, state.Sequence);
        Publish(state, () => ChangeStreamEvent.Snapshot(state.SnapshotJson));
    }

    private void Publish(ViewState state, Func<ChangeStreamEvent> evt)
    {
        lock (_gate)
        {
            Volatile.Write(ref _current, state);
            FanOutLocked(evt);
        }
    }

    private void FanOut(Func<ChangeStreamEvent> evt)
    {
        lock (_gate) FanOutLocked(evt);
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
    }

    internal static string Json<T>(T body) => MessagePackSerializer.ConvertToJson(RegistryCodec.SerializeBody(body));

    public async ValueTask DisposeAsync()
    {
        _feed.Writer.TryComplete();
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP view resynced by snapshot ({Reason}): epoch {Epoch}, sequence {Sequence}")]
    private partial void LogResynced(string reason, string epoch, long sequence);

    [LoggerMessage(Level = LogLevel.Error, Message = "The HTTP view stopped following the registry")]
    private partial void LogViewFailed(Exception exception);
}

/// <summary>A heartbeat and when the view heard it (<see cref="TimeProvider.GetTimestamp"/>).</summary>
internal sealed record HeartbeatSeen(RegistryHeartbeat Heartbeat, long HeardAt);

/// <summary>One immutable version of the view: the state as of <see cref="Sequence"/>.</summary>
internal sealed class ViewState
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

    /// <summary>The next version with <paramref name="change"/> applied; null when the change names no entity.</summary>
    public ViewState? With(RegistryChange change)
    {
        var entity = change.NewValue ?? change.OldValue;
        if (entity is null) return null;
        var remove = change.NewValue is null;
        var (leases, nodes, buses, tools) = (Leases, Nodes, Buses, Tools);
        if (entity.Lease is not null) leases = remove ? leases.Remove(change.Key) : leases.SetItem(change.Key, change.NewValue!.Lease!);
        else if (entity.Node is not null) nodes = remove ? nodes.Remove(change.Key) : nodes.SetItem(change.Key, change.NewValue!.Node!);
        else if (entity.Bus is not null) buses = remove ? buses.Remove(change.Key) : buses.SetItem(change.Key, change.NewValue!.Bus!);
        else if (entity.Tool is not null) tools = remove ? tools.Remove(change.Key) : tools.SetItem(change.Key, change.NewValue!.Tool!);
        else return null;
        return new ViewState(Epoch, change.Sequence, change.Timestamp, leases, nodes, buses, tools);
    }
}
