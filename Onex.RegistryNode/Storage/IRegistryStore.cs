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
    /// Makes <paramref name="writes"/> and <paramref name="replies"/> durable as one transaction; <paramref name="oldestReplyKept"/>
    /// lets older stored replies go. Throws <see cref="StoreWriteException"/> when nothing of it could be written.
    /// </summary>
    void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept);
}

/// <summary>The <see cref="RegistryStoreKind.Memory"/> store: commits go nowhere, a start is empty.</summary>
internal sealed class MemoryRegistryStore : IRegistryStore
{
    public bool IsDurable => false;
    public string Location => "memory";
    public StoredState Load() => StoredState.Empty;

    public void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
    }

    public void Dispose()
    {
    }
}
