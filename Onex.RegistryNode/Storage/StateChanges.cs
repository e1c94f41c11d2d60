namespace Onex.RegistryNode.Storage;

/// <summary>What a stored row holds; the number is written to disk and never reused.</summary>
internal enum StoredKind : byte
{
    Meta = 1,
    Lease = 2,
    ExpiredLease = 3,
    Port = 4,
    Node = 5,
    Bus = 6,
    Tool = 7,
}

/// <summary>One stored row's identity: its kind and its key within the kind (lease id, port number, node id, ...).</summary>
internal readonly record struct StateKey(StoredKind Kind, string Key);

/// <summary>A row to write: its current encoding, or null when the entity is gone.</summary>
internal readonly record struct StoredWrite(StateKey Key, byte[]? Value);

/// <summary>
/// A reply kept for retries, as stored (PROTOCOL.md section 4): the request's ids and message type, its body's hash
/// (<see cref="Server.ReplyCache.HashOf"/>), the whole reply and when it was kept. A struct: one is made for every
/// request that changes state.
/// </summary>
internal readonly record struct StoredReply(string ClientId, string RequestId, string MessageType, UInt128 BodyHash, byte[] Reply, string? ErrorCode, long StoredAt);

/// <summary>Everything a store held at start: rows by key and the kept replies, oldest first.</summary>
internal sealed class StoredState
{
    public static StoredState Empty => new(new Dictionary<StateKey, byte[]>(), []);

    public StoredState(Dictionary<StateKey, byte[]> rows, List<StoredReply> replies)
    {
        Rows = rows;
        Replies = replies;
    }

    public Dictionary<StateKey, byte[]> Rows { get; }
    public List<StoredReply> Replies { get; }

    public IEnumerable<KeyValuePair<StateKey, byte[]>> OfKind(StoredKind kind) => Rows.Where(r => r.Key.Kind == kind);

    public byte[]? Find(StoredKind kind, string key) => Rows.GetValueOrDefault(new StateKey(kind, key));
}

/// <summary>
/// The rows changed since the last commit. Owners mark a row when they change the entity behind it; at commit the
/// current value of each marked row is read once, so an entity changed many times in one wake-up is written once.
/// Owned by the registry thread.
/// </summary>
internal sealed class StateChanges(bool enabled = true)
{
    private readonly HashSet<StateKey> _dirty = [];

    /// <summary>False for a memory store: nothing is kept, so nothing is marked.</summary>
    public bool Enabled { get; } = enabled;

    /// <summary>True when a row changed since the last commit.</summary>
    public bool Any => _dirty.Count > 0;

    public void Mark(StoredKind kind, string key)
    {
        if (Enabled) _dirty.Add(new StateKey(kind, key));
    }

    /// <summary>The marked rows (read their values while committing, then <see cref="Clear"/>).</summary>
    public IReadOnlyCollection<StateKey> Marked => _dirty;

    /// <summary>Forgets the marks (the state they describe was thrown away).</summary>
    public void Clear() => _dirty.Clear();
}
