using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Replies kept by (clientId, requestId) so a retry gets the first reply instead of executing again (no second
/// lease or registration). Bounded by count, age and bytes, and each client by its share of count and bytes: a
/// client over its share loses its own oldest replies, and when the whole cache is over its bound the oldest reply
/// of the client holding the most bytes goes, so one client's flood cannot push out another client's replies
/// (PROTOCOL.md section 4). A repeat whose message type or body differs from the first is not a retry
/// (<see cref="Outcome.Mismatch"/>); the body is compared by its 128-bit XxHash128, which is what is kept of it. Owned
/// by the registry thread.
/// </summary>
/// <remarks>
/// An entry is a value in the table, its bytes (message type, error code, body hash, reply) are in <see cref="ChunkedBytes"/>'
/// chunks, and its key holds the request id and the client's one id string: a kept reply costs the collector one
/// string, not five objects promoted through every generation.
/// </remarks>
internal sealed class ReplyCache
{
    public enum Outcome { Miss, Hit, Mismatch }

    // The ids are hashed once per request and the hash kept in the key: once the cache is full, every request also
    // evicts the oldest entry, and that lookup should not hash strings again.
    private readonly struct Key : IEquatable<Key>
    {
        private readonly int _hash;

        public Key(string clientId, string requestId) : this(clientId, requestId, HashCode.Combine(clientId, requestId))
        {
        }

        /// <summary>A key for the same ids as one already hashed (<paramref name="clientId"/> equal to its client id).</summary>
        public Key(string clientId, string requestId, int hash)
        {
            ClientId = clientId;
            RequestId = requestId;
            _hash = hash;
        }

        public string ClientId { get; }
        public string RequestId { get; }
        public int Hash => _hash;

        public bool Equals(Key other) =>
            _hash == other._hash && string.Equals(RequestId, other.RequestId, StringComparison.Ordinal) && string.Equals(ClientId, other.ClientId, StringComparison.Ordinal);

        public override bool Equals(object? obj) => obj is Key other && Equals(other);

        public override int GetHashCode() => _hash;

        public bool IsFor(string clientId, string requestId) => ReferenceEquals(ClientId, clientId) && ReferenceEquals(RequestId, requestId);
    }

    // An entry's bytes are, in order: its message type and error code (UTF-8; CodeLength -1: no error code), the
    // request body's hash and the reply. Serial tells it from an older entry of the same key still queued.
    private readonly record struct Entry(long Serial, long StoredAt, ChunkedBytes.Place Place, int TypeLength, int CodeLength)
    {
        private int HashStart => TypeLength + Math.Max(0, CodeLength);
        public int ReplyLength => Place.Length - HashStart - HashBytes;

        // The reply and body hash plus a rough share for the entry, its key strings and the dictionary and queue slots.
        public long Bytes => HashBytes + ReplyLength + 256;

        public Span<byte> MessageType(Span<byte> bytes) => bytes[..TypeLength];
        public Span<byte> ErrorCode(Span<byte> bytes) => bytes.Slice(TypeLength, Math.Max(0, CodeLength));
        public Span<byte> Hash(Span<byte> bytes) => bytes.Slice(HashStart, HashBytes);
        public UInt128 BodyHash(Span<byte> bytes) => BinaryPrimitives.ReadUInt128LittleEndian(Hash(bytes));
        public Span<byte> Reply(Span<byte> bytes) => bytes[(HashStart + HashBytes)..];
    }

    /// <summary>Bytes of a body hash.</summary>
    public const int HashBytes = 16;

    // An entry as its queues hold it: enough to find it, to tell whether it is still the one kept, and to age it.
    private readonly record struct Queued(Key Key, long Serial, long StoredAt, long Bytes);

    // One client's replies, oldest first (the queue may hold entries already forgotten; they are skipped).
    private sealed class Share(string clientId)
    {
        public string ClientId { get; } = clientId;
        public long Bytes;
        public int Count;
        public readonly Queue<Queued> Order = new();
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
    private readonly Queue<Queued> _order = new();
    private readonly ChunkedBytes _stored = new();
    private long _serial;
    private long _bytes;
    // Bytes of entries forgotten while still queued in _order (evicted by share or replaced): the queue keeps their
    // keys alive until it is rebuilt, so they count towards when to rebuild it.
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
    public long OldestStoredAt => _order.TryPeek(out var oldest) ? oldest.StoredAt : _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Slots in the age queue, kept replies and forgotten ones not yet dropped (for tests).</summary>
    internal int QueuedSlots => _order.Count;

    /// <summary>Chunks of <see cref="ChunkedBytes.ChunkBytes"/> the kept replies' bytes occupy now (for tests).</summary>
    internal int Chunks => _stored.ChunkCount;

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
            Keep(new Key(reply.ClientId, reply.RequestId), reply.MessageType, reply.BodyHash, reply.Reply, reply.ErrorCode, reply.StoredAt);
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
        // Found: a retry (or a reused id), so allocating here is rare.
        var bytes = _stored.Span(entry.Place);
        if (Encoding.UTF8.GetString(entry.MessageType(bytes)) != messageType || HashOf(body) != entry.BodyHash(bytes)) return Outcome.Mismatch;
        reply = entry.Reply(bytes).ToArray();
        errorCode = entry.CodeLength < 0 ? null : Encoding.UTF8.GetString(entry.ErrorCode(bytes));
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
        var storedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var hash = HashOf(body);
        if (store) _unstored.Add(new StoredReply(clientId, requestId, messageType, hash, reply, errorCode, storedAt));
        Keep(key, messageType, hash, reply, errorCode, storedAt);
    }

    /// <summary>What is kept of a request body to tell a retry from a different request with the same ids.</summary>
    public static UInt128 HashOf(ReadOnlySpan<byte> body) => XxHash128.HashToUInt128(body);

    private void Keep(Key key, string messageType, UInt128 bodyHash, ReadOnlySpan<byte> reply, string? errorCode, long storedAt)
    {
        if (_entries.TryGetValue(key, out var replaced)) Forget(key, replaced.Serial);
        var share = ShareOf(key.ClientId);
        // The key keeps the share's id string, not this request's copy of it.
        key = new Key(share.ClientId, key.RequestId, key.Hash);

        var typeLength = Encoding.UTF8.GetByteCount(messageType);
        var codeLength = errorCode is null ? -1 : Encoding.UTF8.GetByteCount(errorCode);
        var place = _stored.Allocate(typeLength + Math.Max(0, codeLength) + HashBytes + reply.Length);
        var entry = new Entry(++_serial, storedAt, place, typeLength, codeLength);
        var bytes = _stored.Span(place);
        Encoding.UTF8.GetBytes(messageType, entry.MessageType(bytes));
        if (errorCode is not null) Encoding.UTF8.GetBytes(errorCode, entry.ErrorCode(bytes));
        BinaryPrimitives.WriteUInt128LittleEndian(entry.Hash(bytes), bodyHash);
        reply.CopyTo(entry.Reply(bytes));

        _entries[key] = entry;
        _bytes += entry.Bytes;
        Charge(share, entry.Bytes, +1);
        var queued = new Queued(key, entry.Serial, storedAt, entry.Bytes);
        share.Order.Enqueue(queued);
        _order.Enqueue(queued);

        // Over its own share, a client loses its own oldest replies.
        while ((share.Bytes > _maxBytesPerClient || share.Count > _capacityPerClient) && TakeOldestOf(share)) { }
        // Over the whole bound, the client holding the most bytes gives up its oldest reply.
        while ((_entries.Count > _capacity || _bytes > _maxBytes) && _largest.Max is { } largest && TakeOldestOf(largest)) { }

        DropForgottenHeads();
        // Entries taken out of the middle leave stale slots in the age queue: compact it, in place, before they outgrow
        // the live ones.
        if (_order.Count > 2 * _entries.Count + 1024 || _staleBytes > Math.Max(_maxBytesPerClient, 1024 * 1024))
        {
            for (var i = _order.Count; i > 0; i--)
            {
                var item = _order.Dequeue();
                if (IsKept(item)) _order.Enqueue(item);
            }
            _staleBytes = 0;
        }

        // Entries forgotten out of order leave chunks mostly empty: move the kept ones together.
        if (_stored.NeedsCompaction)
        {
            _stored.Compact(move =>
            {
                foreach (var kept in _entries.Keys)
                {
                    ref var moved = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, kept);
                    moved = moved with { Place = move(moved.Place) };
                }
            });
        }
    }

    private bool IsKept(Queued item) => _entries.TryGetValue(item.Key, out var current) && current.Serial == item.Serial;

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
            if (Forget(oldest.Key, oldest.Serial)) return true;
        return false;
    }

    private void Evict(long now)
    {
        while (_order.TryPeek(out var oldest) && oldest.StoredAt + _retentionMs <= now)
        {
            _order.Dequeue();
            if (!Forget(oldest.Key, oldest.Serial, queued: false)) _staleBytes -= oldest.Bytes;
        }
        DropForgottenHeads();
    }

    // Entries forgotten by their client's share are usually the oldest of all too (always with one client): their
    // slots leave the head of the age queue at once.
    private void DropForgottenHeads()
    {
        while (_order.TryPeek(out var head) && !IsKept(head))
        {
            _order.Dequeue();
            _staleBytes -= head.Bytes;
        }
    }

    private bool Forget(Key key, long serial, bool queued = true)
    {
        // The key may since hold a newer entry; only drop the one that was queued.
        if (!_entries.TryGetValue(key, out var entry) || entry.Serial != serial) return false;
        _entries.Remove(key);
        _stored.Release(entry.Place);
        _bytes -= entry.Bytes;
        if (queued) _staleBytes += entry.Bytes;
        var share = _shares[key.ClientId];
        Charge(share, -entry.Bytes, -1);
        // Drop forgotten entries at the head of the client's queue, so it holds no more than its live ones for long.
        while (share.Order.TryPeek(out var head) && !IsKept(head))
            share.Order.Dequeue();
        return true;
    }
}
