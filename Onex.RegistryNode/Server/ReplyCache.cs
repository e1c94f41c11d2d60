namespace Onex.RegistryNode.Server;

/// <summary>
/// Replies kept by (clientId, requestId) so a retry gets the first reply instead of executing again (no second
/// lease or registration). Bounded by count, age and bytes; the oldest entries go first. A repeat whose message
/// type or body differs from the first is not a retry (<see cref="Outcome.Mismatch"/>). Owned by the registry thread.
/// </summary>
internal sealed class ReplyCache
{
    public enum Outcome { Miss, Hit, Mismatch }

    private readonly record struct Key(string ClientId, string RequestId);

    private sealed record Entry(string MessageType, byte[] Body, byte[] Reply, string? ErrorCode, long StoredAt)
    {
        // The arrays plus a rough share for the entry, its key strings and the dictionary and queue slots.
        public long Bytes => Body.Length + Reply.Length + 256;
    }

    private readonly int _capacity;
    private readonly long _retentionMs;
    private readonly long _maxBytes;
    private readonly TimeProvider _time;
    private readonly Dictionary<Key, Entry> _entries = new();
    private readonly Queue<(Key Key, Entry Entry)> _order = new();
    private long _bytes;

    public ReplyCache(int capacity, TimeSpan retention, long maxBytes, TimeProvider time)
    {
        _capacity = Math.Max(0, capacity);
        _retentionMs = (long)retention.TotalMilliseconds;
        _maxBytes = maxBytes;
        _time = time;
    }

    /// <summary>How many replies are kept.</summary>
    public int Count => _entries.Count;

    /// <summary>Finds the reply to an earlier request with the same ids; <paramref name="errorCode"/> is its error code, if it was an Error.</summary>
    public Outcome Lookup(string clientId, string requestId, string messageType, ReadOnlySpan<byte> body, out byte[] reply, out string? errorCode)
    {
        reply = [];
        errorCode = null;
        Evict(_time.GetUtcNow().ToUnixTimeMilliseconds());
        if (!_entries.TryGetValue(new Key(clientId, requestId), out var entry)) return Outcome.Miss;
        if (entry.MessageType != messageType || !body.SequenceEqual(entry.Body)) return Outcome.Mismatch;
        reply = entry.Reply;
        errorCode = entry.ErrorCode;
        return Outcome.Hit;
    }

    /// <summary>Keeps <paramref name="reply"/> for retries of this request.</summary>
    public void Add(string clientId, string requestId, string messageType, ReadOnlySpan<byte> body, byte[] reply, string? errorCode)
    {
        if (_capacity == 0) return;
        var key = new Key(clientId, requestId);
        var entry = new Entry(messageType, body.ToArray(), reply, errorCode, _time.GetUtcNow().ToUnixTimeMilliseconds());
        if (_entries.Remove(key, out var replaced)) _bytes -= replaced.Bytes;
        _entries[key] = entry;
        _bytes += entry.Bytes;
        _order.Enqueue((key, entry));
        while ((_entries.Count > _capacity || _bytes > _maxBytes) && _order.TryDequeue(out var oldest)) Forget(oldest.Key, oldest.Entry);
    }

    private void Evict(long now)
    {
        while (_order.TryPeek(out var oldest) && oldest.Entry.StoredAt + _retentionMs <= now)
        {
            _order.Dequeue();
            Forget(oldest.Key, oldest.Entry);
        }
    }

    private void Forget(Key key, Entry entry)
    {
        // The key may since hold a newer entry; only drop the one that was queued.
        if (_entries.TryGetValue(key, out var current) && ReferenceEquals(current, entry))
        {
            _entries.Remove(key);
            _bytes -= entry.Bytes;
        }
    }
}
