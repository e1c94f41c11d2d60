using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Tenants;

namespace Onex.RegistryNode.Watches;

/// <summary>What became of one stream message handed to the ROUTER socket.</summary>
internal enum StreamSendOutcome
{
    /// <summary>Queued for the peer.</summary>
    Sent,
    /// <summary>The peer's queue is full: kept, and tried again on a later turn.</summary>
    Full,
    /// <summary>The peer has disconnected: its watches end.</summary>
    Gone,
}

/// <summary>
/// The change streams opened with <c>Watch</c> over the request socket (PROTOCOL.md 16.7), etcd's watch on this
/// registry's protocol: per watch, committed changes matching its prefix and visible to its tenant, and heartbeats,
/// sent only within the credit its client grants. What a watch cannot be sent yet waits in a bounded queue; past the
/// bound the watch ended with WATCH_FELL_BEHIND, so a slow watcher costs the registry a bounded amount of memory.
/// Owned by the registry thread; it sees changes only after their commit (it sits behind the deferred sink).
/// </summary>
internal sealed partial class WatchHub : IChangeSink
{
    // A heartbeat message's share of the byte bounds (it is small and at most one waits per watch).
    private const int HeartbeatBytes = 128;

    private readonly record struct Item(RegistryChange? Change, RegistryHeartbeat? Heartbeat, long Previous, long Sequence, int Bytes);

    // A change kept for watches that start from a past sequence: a small one as its body's bytes in _pastBodies,
    // decoded again only for such a watch (kept as objects, the lease churn's changes lived just long enough to be
    // promoted; see ChunkedBytes); a large one (a tool's schemas, a node's metadata) as the change itself, whose entity
    // the state holds anyway, so the history does not hold a second copy of it.
    private readonly record struct Past(long Sequence, string? Tenant, int Bytes, ChunkedBytes.Place Body, RegistryChange? Change);

    // Changes with bodies up to this size are kept as bytes.
    private const int PastBodyBytes = 512;

    private sealed class Stream(string key, string peerKey, byte[] peer, bool viaReq, string watchId, string clientId, string prefix, AuthCaller? caller)
    {
        public readonly string Key = key;
        public readonly string PeerKey = peerKey;
        public readonly byte[] Peer = peer;
        public readonly bool ViaReq = viaReq;
        public readonly string WatchId = watchId;
        public readonly string ClientId = clientId;
        public readonly string Prefix = prefix;
        public readonly string? Tenant = caller?.Tenant;
        // Open registries and admins see every tenant; nodes without a tenant only they see.
        public readonly bool SeesAll = caller is null || caller.IsAdmin;
        public readonly LinkedList<Item> Queue = new();
        public long QueuedBytes;
        public long Covered;
        public long Credit;
        public long HeardAt;
    }

    private readonly WatchOptions _options;
    private readonly ChangeBodies _bodies;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, Stream> _streams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _perPeer = new(StringComparer.Ordinal);
    // WatchCredit messages a connection with open watches sends free of its tenant's request rate (by peer key).
    private readonly TokenBuckets _uncharged;
    private readonly HashSet<Stream> _ready = [];
    private readonly List<(Stream Stream, WatchEvent Ended)> _endings = [];
    private readonly Queue<Past> _history = new();
    private readonly ChunkedBytes _pastBodies = new();
    private Func<byte[], bool, byte[], StreamSendOutcome>? _send;
    private long _historyBytes;
    private long _queuedBytes;
    private long _queuedEvents;
    private string _epoch = "";
    private long _last;

    public WatchHub(WatchOptions options, ChangeBodies bodies, TimeProvider time, ILogger logger)
    {
        _options = options;
        _bodies = bodies;
        _time = time;
        _logger = logger;
        _uncharged = new TokenBuckets(time);
    }

    /// <summary>
    /// Whether <paramref name="envelope"/> goes free of its tenant's <c>requestsPerSecond</c> quota (PROTOCOL.md 16.7):
    /// a <c>WatchCredit</c> naming an open watch of <paramref name="peer"/>, within the connection's
    /// <see cref="WatchOptions.UnchargedCreditsPerSecond"/>. Flow control of an accepted stream is not a new request,
    /// so a watcher at its quota keeps streaming; anything else counts as a request. Never throws.
    /// </summary>
    public bool TakeUncharged(byte[] peer, RegistryEnvelope envelope)
    {
        if (envelope.MessageType != nameof(WatchCredit) || peer.Length == 0 || _perPeer.Count == 0) return false;
        string watchId;
        try
        {
            watchId = envelope.BodyAs<WatchCredit>().WatchId;
        }
        catch (OnexException)
        {
            return false; // charged like any request; the handler answers it MALFORMED
        }
        var peerKey = Convert.ToHexString(peer);
        return _streams.ContainsKey(peerKey + "/" + watchId) && _uncharged.TryTake(peerKey, _options.UnchargedCreditsPerSecond);
    }

    /// <summary>True for the message types this hub answers.</summary>
    public static bool Handles(string messageType) =>
        messageType is nameof(Watch) or nameof(WatchCredit) or nameof(WatchCancel);

    /// <summary>Open watches.</summary>
    public int Count => _streams.Count;

    /// <summary>Messages waiting for credit (or for their peer's socket), all watches together.</summary>
    public long QueuedEvents => _queuedEvents;

    /// <summary>Bytes of changes waiting, all watches together (each counted at its encoded size).</summary>
    public long QueuedBytes => _queuedBytes;

    /// <summary>Watches ended because they fell behind, since start.</summary>
    public long FellBehind { get; private set; }

    /// <summary>The epoch and latest committed sequence the streams continue from (at start, after loading the store).</summary>
    public void Start(string epoch, long sequence)
    {
        _epoch = epoch;
        _last = sequence;
    }

    /// <summary>Where stream messages go: the ROUTER socket, on the registry thread.</summary>
    public void Attach(Func<byte[], bool, byte[], StreamSendOutcome> send) => _send = send;

    /// <summary>
    /// Answers <c>Watch</c>, <c>WatchCredit</c> and <c>WatchCancel</c> from <paramref name="peer"/>. Refusals are thrown
    /// as <see cref="OnexException"/> for the dispatcher to turn into Error replies.
    /// </summary>
    public byte[] Handle(RegistryEnvelope envelope, AuthCaller? caller, byte[] peer, bool viaReq)
    {
        var peerKey = Convert.ToHexString(peer);
        switch (envelope.MessageType)
        {
            case nameof(Watch):
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, Open(envelope, envelope.BodyAs<Watch>(), caller, peer, peerKey, viaReq));
            case nameof(WatchCredit):
            {
                var body = envelope.BodyAs<WatchCredit>();
                Reject.IfBlank(body.WatchId, "watchId");
                CheckCredit(body.Credit);
                var stream = Find(peerKey, body.WatchId, caller);
                stream.Credit = Math.Min(stream.Credit + body.Credit, _options.MaxCredit);
                stream.HeardAt = _time.GetTimestamp();
                if (stream.Queue.Count > 0) _ready.Add(stream);
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, new Ack());
            }
            default:
            {
                var body = envelope.BodyAs<WatchCancel>();
                Reject.IfBlank(body.WatchId, "watchId");
                if (_streams.TryGetValue(peerKey + "/" + body.WatchId, out var stream) && SameCaller(stream, caller))
                {
                    Remove(stream);
                    LogCancelled(body.WatchId, envelope.ClientId);
                }
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, new Ack());
            }
        }
    }

    private WatchEvent Open(RegistryEnvelope envelope, Watch body, AuthCaller? caller, byte[] peer, string peerKey, bool viaReq)
    {
        Reject.IfTooLong(body.Prefix, "prefix", Reject.MaxNameLength);
        var prefix = string.IsNullOrEmpty(body.Prefix) ? ChangeTypes.TopicPrefix : body.Prefix;
        if (!prefix.StartsWith(ChangeTypes.TopicPrefix, StringComparison.Ordinal))
            throw Reject.InvalidArgument("prefix", $"Field 'prefix' must start with '{ChangeTypes.TopicPrefix}' (a broadcast topic prefix such as 'registry.bus.'), not '{prefix}'.",
                ("value", prefix));
        CheckCredit(body.Credit);
        Reject.IfTooLong(body.Epoch, "epoch", Reject.MaxNameLength);
        if (body.StartSequence is < 1)
            throw Reject.InvalidArgument("startSequence", $"Field 'startSequence' must be at least 1, not {body.StartSequence}.",
                ("min", "1"), ("value", body.StartSequence.Value.ToString()));

        var key = peerKey + "/" + envelope.RequestId;
        if (_streams.TryGetValue(key, out var existing))
        {
            // A retry of the same Watch (its reply was lost): the stream is already open.
            existing.HeardAt = _time.GetTimestamp();
            return Started(existing);
        }
        if (_perPeer.GetValueOrDefault(peerKey) >= _options.MaxPerPeer)
            throw new UnavailableException($"This connection has {_options.MaxPerPeer} watches open, the most one peer may have; cancel one (WatchCancel) first.",
                new Dictionary<string, string> { ["reason"] = "watches", ["limit"] = _options.MaxPerPeer.ToString(), ["scope"] = "peer" });
        if (_streams.Count >= _options.MaxTotal)
            throw new UnavailableException($"The registry has {_options.MaxTotal} watches open, the most it serves; retry later.",
                new Dictionary<string, string> { ["reason"] = "watches", ["limit"] = _options.MaxTotal.ToString(), ["scope"] = "registry" });

        var covered = _last;
        if (body.StartSequence is { } start)
        {
            if (body.Epoch is { } epoch && epoch != _epoch)
                throw new ResyncRequiredException(
                    $"Sequence {start} belongs to epoch {epoch}; the registry is in epoch {_epoch}. Take a snapshot and watch from its sequence.",
                    new Dictionary<string, string> { ["reason"] = "epoch", ["epoch"] = _epoch, ["sequence"] = _last.ToString() });
            if (start > _last + 1)
                throw Reject.InvalidArgument("startSequence", $"Field 'startSequence' is {start}, past the next change ({_last + 1}).",
                    ("max", (_last + 1).ToString()), ("value", start.ToString()));
            if (start <= _last && (_history.Count == 0 || _history.Peek().Sequence > start))
                throw new ResyncRequiredException(
                    $"The registry no longer holds change {start} (it keeps the last {_options.HistoryChanges} changes since it started); take a snapshot and watch from its sequence.",
                    new Dictionary<string, string>
                    {
                        ["reason"] = "history", ["requested"] = start.ToString(), ["sequence"] = _last.ToString(),
                        ["oldest"] = (_history.Count == 0 ? _last + 1 : _history.Peek().Sequence).ToString(),
                    });
            covered = start - 1;
        }

        var stream = new Stream(key, peerKey, peer, viaReq, envelope.RequestId, envelope.ClientId, prefix, caller)
        {
            Covered = covered,
            Credit = body.Credit,
            HeardAt = _time.GetTimestamp(),
        };
        _streams.Add(key, stream);
        _perPeer[peerKey] = _perPeer.GetValueOrDefault(peerKey) + 1;
        var reply = Started(stream);
        if (body.StartSequence is not null)
        {
            foreach (var past in _history)
            {
                if (past.Sequence <= covered) continue;
                var change = past.Change ?? RegistryCodec.DeserializeBody<RegistryChange>(_pastBodies.Span(past.Body).ToArray());
                if (!Offer(stream, change, past.Tenant, past.Bytes)) break;
            }
        }
        LogOpened(envelope.RequestId, envelope.ClientId, caller?.Tenant ?? "(open)", prefix, covered);
        return reply;
    }

    public void Publish(RegistryChange change)
    {
        try
        {
            _epoch = change.Epoch;
            _last = change.Sequence;
            var tenant = TenantOf(change);
            var body = _bodies.Of(change);
            var bytes = body.Length;
            if (bytes <= PastBodyBytes)
            {
                var kept = _pastBodies.Allocate(bytes);
                body.Span.CopyTo(_pastBodies.Span(kept));
                _history.Enqueue(new Past(change.Sequence, tenant, bytes, kept, null));
            }
            else _history.Enqueue(new Past(change.Sequence, tenant, bytes, default, change));
            _historyBytes += bytes;
            while (_history.Count > _options.HistoryChanges || (_historyBytes > _options.HistoryBytes && _history.Count > 1))
            {
                var oldest = _history.Dequeue();
                _historyBytes -= oldest.Bytes;
                if (oldest.Change is null) _pastBodies.Release(oldest.Body);
            }
            if (_streams.Count == 0) return;
            foreach (var stream in _streams.Values.ToList()) Offer(stream, change, tenant, bytes);
        }
        catch (Exception ex)
        {
            // Never fail the broadcast for the PUB side; a watcher that misses this sees the hole at the next message.
            LogFailed(ex, change.Sequence);
        }
    }

    public void Publish(RegistryHeartbeat heartbeat)
    {
        _epoch = heartbeat.Epoch;
        if (_streams.Count == 0) return;
        try
        {
            Beat(heartbeat);
        }
        catch (Exception ex)
        {
            LogFailed(ex, heartbeat.Sequence);
        }
    }

    private void Beat(RegistryHeartbeat heartbeat)
    {
        var now = _time.GetTimestamp();
        foreach (var stream in _streams.Values.ToList())
        {
            if (_time.GetElapsedTime(stream.HeardAt, now) > _options.IdleTimeout)
            {
                End(stream, ErrorCodes.WatchExpired,
                    $"Nothing was heard from this watch's client (WatchCredit) for {(long)_options.IdleTimeout.TotalMilliseconds} ms; the watch ended. Resync by snapshot and watch again.");
                continue;
            }
            // While credit is short, heartbeats merge into one: the latest, covering what the first one would have.
            if (stream.Queue.Last is { Value.Heartbeat: not null } last)
            {
                last.Value = last.Value with { Heartbeat = heartbeat, Sequence = heartbeat.Sequence };
                stream.Covered = heartbeat.Sequence;
                continue;
            }
            Enqueue(stream, new Item(null, heartbeat, stream.Covered, heartbeat.Sequence, HeartbeatBytes));
        }
    }

    /// <summary>Sends what credit allows, and the end notices; called by the registry thread after each turn's replies.</summary>
    public void Pump()
    {
        var send = _send;
        if (send is null) return;
        foreach (var (stream, ended) in _endings)
            send(stream.Peer, stream.ViaReq, RegistryCodec.Encode(stream.WatchId, stream.ClientId, ended));
        _endings.Clear();
        if (_ready.Count == 0) return;
        foreach (var stream in _ready.ToList())
        {
            while (stream.Credit > 0 && stream.Queue.First is { } first)
            {
                var outcome = send(stream.Peer, stream.ViaReq, RegistryCodec.Encode(stream.WatchId, stream.ClientId, EventOf(stream, first.Value)));
                if (outcome == StreamSendOutcome.Full) break;
                if (outcome == StreamSendOutcome.Gone)
                {
                    Remove(stream);
                    LogPeerGone(stream.WatchId, stream.ClientId);
                    break;
                }
                stream.Queue.RemoveFirst();
                Release(stream, first.Value.Bytes);
                stream.Credit--;
            }
            if (stream.Queue.Count == 0 || stream.Credit == 0) _ready.Remove(stream);
        }
    }

    /// <summary>Ends every watch without notice (the state was rolled back to an earlier commit): their clients resync.</summary>
    public void DropAll()
    {
        foreach (var stream in _streams.Values.ToList()) Remove(stream);
        _endings.Clear();
    }

    private static WatchEvent EventOf(Stream stream, Item item) => new()
    {
        WatchId = stream.WatchId,
        Kind = item.Change is null ? WatchEventKinds.Heartbeat : WatchEventKinds.Change,
        Epoch = item.Change?.Epoch ?? item.Heartbeat!.Epoch,
        Previous = item.Previous,
        Sequence = item.Sequence,
        Change = item.Change,
        Heartbeat = item.Heartbeat,
    };

    private WatchEvent Started(Stream stream) => new()
    {
        WatchId = stream.WatchId,
        Kind = WatchEventKinds.Started,
        Epoch = _epoch,
        Previous = StartOf(stream),
        Sequence = StartOf(stream),
        IdleTimeoutMs = (long)_options.IdleTimeout.TotalMilliseconds,
    };

    // Where a stream began: before its first queued message, or what it covers when nothing waits.
    private static long StartOf(Stream stream) => stream.Queue.First is { } first ? first.Value.Previous : stream.Covered;

    /// <summary>Queues <paramref name="change"/> for <paramref name="stream"/> when it is for it; false when the stream ended (fell behind).</summary>
    private bool Offer(Stream stream, RegistryChange change, string? tenant, int bytes)
    {
        if (!(stream.SeesAll || (tenant is not null && tenant == stream.Tenant))) return true;
        if (!ChangeTypes.TopicOf(change.ChangeType).StartsWith(stream.Prefix, StringComparison.Ordinal)) return true;
        var item = new Item(change, null, stream.Covered, change.Sequence, bytes);
        return Enqueue(stream, item);
    }

    private bool Enqueue(Stream stream, Item item)
    {
        if (stream.Queue.Count >= _options.MaxQueuedEvents
            || stream.QueuedBytes + item.Bytes > _options.MaxQueuedBytesPerWatch
            || _queuedBytes + item.Bytes > _options.MaxQueuedBytesTotal)
        {
            FellBehind++;
            End(stream, ErrorCodes.WatchFellBehind,
                $"This watch fell behind: {stream.Queue.Count} message(s) ({stream.QueuedBytes} bytes) wait for credit, the most the registry holds for one watch "
                + $"({_options.MaxQueuedEvents} messages, {_options.MaxQueuedBytesPerWatch} bytes). Resync by snapshot and watch again.");
            return false;
        }
        stream.Queue.AddLast(item);
        stream.QueuedBytes += item.Bytes;
        stream.Covered = item.Sequence;
        _queuedBytes += item.Bytes;
        _queuedEvents++;
        if (stream.Credit > 0) _ready.Add(stream);
        return true;
    }

    private void Release(Stream stream, int bytes)
    {
        stream.QueuedBytes -= bytes;
        _queuedBytes -= bytes;
        _queuedEvents--;
    }

    private void End(Stream stream, string code, string message)
    {
        var covered = StartOf(stream);
        Remove(stream);
        _endings.Add((stream, new WatchEvent
        {
            WatchId = stream.WatchId, Kind = WatchEventKinds.Ended, Epoch = _epoch, Previous = covered, Sequence = covered, Code = code, Message = message,
        }));
        LogEnded(stream.WatchId, stream.ClientId, code);
    }

    private void Remove(Stream stream)
    {
        if (!_streams.Remove(stream.Key)) return;
        var left = _perPeer[stream.PeerKey] - 1;
        if (left == 0)
        {
            _perPeer.Remove(stream.PeerKey);
            _uncharged.Remove(stream.PeerKey);
        }
        else _perPeer[stream.PeerKey] = left;
        _ready.Remove(stream);
        foreach (var item in stream.Queue) Release(stream, item.Bytes);
        stream.Queue.Clear();
    }

    private Stream Find(string peerKey, string watchId, AuthCaller? caller)
    {
        if (_streams.TryGetValue(peerKey + "/" + watchId, out var stream) && SameCaller(stream, caller)) return stream;
        throw Reject.NotFound($"No open watch '{watchId}' on this connection (it ended, or was opened on another connection); watch again.",
            ("watchId", watchId));
    }

    private static bool SameCaller(Stream stream, AuthCaller? caller) =>
        stream.Tenant == caller?.Tenant && stream.SeesAll == (caller is null || caller.IsAdmin);

    private void CheckCredit(int credit)
    {
        if (credit < 0 || credit > _options.MaxCredit)
            throw Reject.InvalidArgument("credit", $"Field 'credit' must be between 0 and {_options.MaxCredit}, not {credit}.",
                ("min", "0"), ("max", _options.MaxCredit.ToString()), ("value", credit.ToString()));
    }

    /// <summary>
    /// The tenant a change belongs to: its record's <c>tenant</c> field (null is <c>default</c>, PROTOCOL.md 16.3). Every
    /// node, lease, bus and tool record names its tenant, so no lookup by node id is needed (node ids are per tenant:
    /// two tenants may both have a node of that id). Null for a change of no tenant's record: only the open and admin
    /// watches see those.
    /// </summary>
    private static string? TenantOf(RegistryChange change)
    {
        var entity = change.NewValue ?? change.OldValue;
        if (entity is null) return null;
        if (entity.Node is { } node) return TenantNames.Of(node.Tenant);
        if (entity.Lease is { } lease) return TenantNames.Of(lease.Tenant);
        if (entity.Bus is { } bus) return TenantNames.Of(bus.Tenant);
        if (entity.Tool is { } tool) return TenantNames.Of(tool.Tenant);
        return null;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Watch {WatchId} of {ClientId} opened (tenant {Tenant}, prefix {Prefix}, from sequence {Covered})")]
    private partial void LogOpened(string watchId, string clientId, string tenant, string prefix, long covered);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Watch {WatchId} of {ClientId} cancelled")]
    private partial void LogCancelled(string watchId, string clientId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Watch {WatchId} of {ClientId} ended: its peer disconnected")]
    private partial void LogPeerGone(string watchId, string clientId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Watch {WatchId} of {ClientId} ended: {Code}")]
    private partial void LogEnded(string watchId, string clientId, string code);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not hand change {Sequence} to the watches; their clients see the hole and resync")]
    private partial void LogFailed(Exception exception, long sequence);
}
