using System.Runtime.InteropServices;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Replies kept by (clientId, requestId) so a retry gets the first reply instead of executing again (no second
/// lease or registration). Bounded by count, age and bytes, and each client by its share of count and bytes: a
/// client over its share loses its own oldest replies, and when the whole cache is over its bound the oldest reply
/// of the client holding the most bytes goes, so one client's flood cannot push out another client's replies
/// (PROTOCOL.md section 4). A repeat whose message type or body differs from the first is not a retry
/// (<see cref="Outcome.Mismatch"/>). Owned by the registry thread.
/// </summary>
internal sealed class ReplyCache
{
    public enum Outcome { Miss, Hit, Mismatch }

    // The ids are hashed once per request and the hash kept in the key: once the cache is full, every request also
    // evicts the oldest entry, and that lookup should not hash strings again.
    private readonly struct Key(string clientId, string requestId) : IEquatable<Key>
    {
        private readonly int _hash = HashCode.Combine(clientId, requestId);

        public string ClientId { get; } = clientId;
        public string RequestId { get; } = requestId;

        public bool Equals(Key other) =>
            _hash == other._hash && string.Equals(RequestId, other.RequestId, StringComparison.Ordinal) && string.Equals(ClientId, other.ClientId, StringComparison.Ordinal);

        public override bool Equals(object? obj) => obj is Key other && Equals(other);

        public override int GetHashCode() => _hash;

        public bool IsFor(string clientId, string requestId) => ReferenceEquals(ClientId, clientId) && ReferenceEquals(RequestId, requestId);
    }

    private sealed record Entry(string MessageType, byte[] Body, byte[] Reply, string? ErrorCode, long StoredAt)
    {
        // The arrays plus a rough share for the entry, its key strings and the dictionary and queue slots.
        public long Bytes { get; } = Body.Length + Reply.Length + 256;
    }

    // One client's replies, oldest first (the queue may hold entries already forgotten; they are skipped).
    private sealed class Share(string clientId)
    {
        public string ClientId { get; } = clientId;
        public long Bytes;
        public int Count;
        public readonly Queue<(Key Key, Entry Entry)> Order = new();
    }

    private sealed class ByBytes : IComparer<Share>
    {
        public static readonly ByBytes Instance = new();

        public int Compare(Share? x, Share? y)
        {
            var bytes = x!.Bytes.CompareTo(y!.Bytes);
            return bytes != 0 ? bytes : string.CompareOrdinal(x.ClientId, y.ClientId);
        }
    }

    private readonly int _capacity;
    private readonly long _retentionMs;
    private readonly long _maxBytes;
    private readonly long _maxBytesPerClient;
    private readonly int _capacityPerClient;
    private readonly Dictionary<string, Share> _shares = new(StringComparer.Ordinal);
    // The shares ordered by bytes, the largest last: the one to take from when the whole cache is over its bound.
    private readonly SortedSet<Share> _largest = new(ByBytes.Instance);
    private readonly TimeProvider _time;
    private readonly Dictionary<Key, Entry> _entries = new();
    private readonly Queue<(Key Key, Entry Entry)> _order = new();
    private long _bytes;
    // Bytes of entries forgotten while still queued in _order (evicted by share or replaced): the queue keeps their
    // arrays alive until it is rebuilt, so they count towards when to rebuild it.
    private long _staleBytes;
    // The last key looked up, reused by the Add that usually follows for the same request.
    private Key _lastLookup = new("", "");
    // Replies added since the last commit that a durable store must keep (those of requests that change state).
    // Two lists in turn: the one taken by the last commit is reused once the next is taken (a commit ends before then).
    private List<StoredReply> _unstored = [];
    private List<StoredReply> _taken = [];
    private static readonly List<StoredReply> NoReplies = [];

    /// <summary>The share of one client by default: an eighth of the whole, in count and in bytes.</summary>
    public const int DefaultClientShareDivisor = 8;

    public ReplyCache(int capacity, TimeSpan retention, long maxBytes, TimeProvider time, long? maxBytesPerClient = null, int? capacityPerClient = null)
    {
        _capacity = Math.Max(0, capacity);
        _retentionMs = (long)retention.TotalMilliseconds;
        _maxBytes = maxBytes;
        _maxBytesPerClient = maxBytesPerClient ?? Math.Max(1, maxBytes / DefaultClientShareDivisor);
        _capacityPerClient = capacityPerClient ?? Math.Max(1, _capacity / DefaultClientShareDivisor);
        _time = time;
    }

    /// <summary>The bytes the kept replies of <paramref name="clientId"/> are charged.</summary>
    public long BytesOf(string clientId) => _shares.TryGetValue(clientId, out var share) ? share.Bytes : 0;

    /// <summary>The bytes all kept replies are charged.</summary>
    public long Bytes => _bytes;

    /// <summary>How many replies are kept.</summary>
    public int Count => _entries.Count;

    /// <summary>When the oldest kept reply was stored (Unix ms); the current time when none is kept.</summary>
    public long OldestStoredAt => _order.TryPeek(out var oldest) ? oldest.Entry.StoredAt : _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>The replies to store since the last call (see <see cref="Add"/>'s <c>store</c>).</summary>
    /// <remarks>The list is valid until the next call.</remarks>
    public IReadOnlyList<StoredReply> TakeUnstored()
    {
        if (_unstored.Count == 0) return NoReplies;
        (_taken, _unstored) = (_unstored, _taken);
        _unstored.Clear();
        return _taken;
    }

    /// <summary>Puts stored replies back, oldest first, keeping the same bounds. Called once, before use.</summary>
    public void Restore(IEnumerable<StoredReply> replies)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var reply in replies)
        {
            if (reply.StoredAt + _retentionMs <= now) continue;
            Keep(new Key(reply.ClientId, reply.RequestId), new Entry(reply.MessageType, reply.Body, reply.Reply, reply.ErrorCode, reply.StoredAt));
        }
    }

    /// <summary>Finds the reply to an earlier request with the same ids; <paramref name="errorCode"/> is its error code, if it was an Error.</summary>
    public Outcome Lookup(string clientId, string requestId, string messageType, ReadOnlySpan<byte> body, out byte[] reply, out string? errorCode)
    {
        reply = [];
        errorCode = null;
        Evict(_time.GetUtcNow().ToUnixTimeMilliseconds());
        _lastLookup = new Key(clientId, requestId);
        if (!_entries.TryGetValue(_lastLookup, out var entry)) return Outcome.Miss;
        if (entry.MessageType != messageType || !body.SequenceEqual(entry.Body)) return Outcome.Mismatch;
        reply = entry.Reply;
        errorCode = entry.ErrorCode;
        return Outcome.Hit;
    }

    /// <summary>
    /// Keeps <paramref name="reply"/> for retries of this request; with <paramref name="store"/>, also for a durable
    /// store to keep across restarts (<see cref="TakeUnstored"/>).
    /// </summary>
    public void Add(string clientId, string requestId, string messageType, ReadOnlySpan<byte> body, byte[] reply, string? errorCode, bool store = false)
    {
        if (_capacity == 0) return;
        var key = _lastLookup.IsFor(clientId, requestId) ? _lastLookup : new Key(clientId, requestId);
        var entry = new Entry(messageType, body.ToArray(), reply, errorCode, _time.GetUtcNow().ToUnixTimeMilliseconds());
        if (store) _unstored.Add(new StoredReply(clientId, requestId, messageType, entry.Body, reply, errorCode, entry.StoredAt));
        Keep(key, entry);
    }

    private void Keep(Key key, Entry entry)
    {
        if (_entries.TryGetValue(key, out var replaced)) Forget(key, replaced);
        _entries[key] = entry;
        _bytes += entry.Bytes;
        var share = ShareOf(key.ClientId);
        Charge(share, entry.Bytes, +1);
        share.Order.Enqueue((key, entry));
        _order.Enqueue((key, entry));

        // Over its own share, a client loses its own oldest replies.
        while ((share.Bytes > _maxBytesPerClient || share.Count > _capacityPerClient) && TakeOldestOf(share)) { }
        // Over the whole bound, the client holding the most bytes gives up its oldest reply.
        while ((_entries.Count > _capacity || _bytes > _maxBytes) && _largest.Max is { } largest && TakeOldestOf(largest)) { }

        // Entries taken out of the middle leave stale slots in the age queue: rebuild it before they outgrow the live ones.
        if (_order.Count > 2 * _entries.Count + 1024 || _staleBytes > Math.Max(_maxBytesPerClient, 1024 * 1024))
        {
            var live = _order.Where(item => _entries.TryGetValue(item.Key, out var current) && ReferenceEquals(current, item.Entry)).ToList();
            _order.Clear();
            foreach (var item in live) _order.Enqueue(item);
            _staleBytes = 0;
        }
    }

    private Share ShareOf(string clientId)
    {
        ref var share = ref CollectionsMarshal.GetValueRefOrAddDefault(_shares, clientId, out var exists);
        if (!exists) share = new Share(clientId);
        return share!;
    }

    private void Charge(Share share, long bytes, int count)
    {
        _largest.Remove(share);
        share.Bytes += bytes;
        share.Count += count;
        if (share.Count > 0) _largest.Add(share);
        else _shares.Remove(share.ClientId);
    }

    private bool TakeOldestOf(Share share)
    {
        while (share.Order.TryDequeue(out var oldest))
            if (Forget(oldest.Key, oldest.Entry)) return true;
        return false;
    }

    private void Evict(long now)
    {
        while (_order.TryPeek(out var oldest) && oldest.Entry.StoredAt + _retentionMs <= now)
        {
            _order.Dequeue();
            if (!Forget(oldest.Key, oldest.Entry, queued: false)) _staleBytes -= oldest.Entry.Bytes;
        }
    }

    private bool Forget(Key key, Entry entry, bool queued = true)
    {
        // The key may since hold a newer entry; only drop the one that was queued.
        if (!_entries.TryGetValue(key, out var current) || !ReferenceEquals(current, entry)) return false;
        _entries.Remove(key);
        _bytes -= entry.Bytes;
        if (queued) _staleBytes += entry.Bytes;
        var share = _shares[key.ClientId];
        Charge(share, -entry.Bytes, -1);
        // Drop forgotten entries at the head of the client's queue, so it holds no more than its live ones for long.
        while (share.Order.TryPeek(out var head) && !(_entries.TryGetValue(head.Key, out var live) && ReferenceEquals(live, head.Entry)))
            share.Order.Dequeue();
        return true;
    }
}
