using MessagePack;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// Where the registry's state survives restarts. The registry thread commits each wake-up's changes as one
/// transaction before any reply or broadcast of them leaves (write-ahead, group commit).
/// </summary>
internal interface IRegistryStore : IDisposable
{
    /// <summary>False for the memory store: a restart forgets everything.</summary>
    bool IsDurable { get; }

    /// <summary>Where the state lives, for messages ("memory" or the database file).</summary>
    string Location { get; }

    /// <summary>The state as of the last commit.</summary>
    StoredState Load();

    /// <summary>
    /// Makes the current values of the <paramref name="changed"/> rows (written by <paramref name="rows"/> straight into
    /// the store's buffer) and <paramref name="replies"/> durable as one transaction; <paramref name="oldestReplyKept"/>
    /// lets older stored replies go. Throws <see cref="StoreWriteException"/> when nothing of it could be written.
    /// </summary>
    void Commit(IReadOnlyCollection<StateKey> changed, IStoredRows rows, IReadOnlyList<StoredReply> replies, long oldestReplyKept);

    /// <summary>The same with the rows' values given as arrays (tests, tools).</summary>
    void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept);
}

/// <summary>The current values of changed rows, written where the store wants them (no array per row).</summary>
internal interface IStoredRows
{
    /// <summary>Writes the current value of <paramref name="key"/>'s row; false, writing nothing, when its entity is gone.</summary>
    bool TryWrite(StateKey key, ref MessagePackWriter writer);
}

/// <summary>Rows whose values are given as arrays.</summary>
internal sealed class GivenRows(IEnumerable<StoredWrite> writes) : IStoredRows
{
    private readonly Dictionary<StateKey, byte[]?> _values = writes.ToDictionary(w => w.Key, w => w.Value);

    public bool TryWrite(StateKey key, ref MessagePackWriter writer)
    {
        if (_values.GetValueOrDefault(key) is not { } value) return false;
        writer.WriteRaw(value);
        return true;
    }
}

/// <summary>The <see cref="RegistryStoreKind.Memory"/> store: commits go nowhere, a start is empty.</summary>
internal sealed class MemoryRegistryStore : IRegistryStore
{
    public bool IsDurable => false;
    public string Location => "memory";
    public StoredState Load() => StoredState.Empty;

    public void Commit(IReadOnlyCollection<StateKey> changed, IStoredRows rows, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
    }

    public void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
    }

    public void Dispose()
    {
    }
}
