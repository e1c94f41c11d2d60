namespace Onex.RegistryNode.Storage;

/// <summary>Where the registry keeps its state.</summary>
public enum RegistryStoreKind
{
    /// <summary>An embedded SQLite database in <see cref="RegistryStoreOptions.DataDirectory"/>: survives restarts (the default).</summary>
    Sqlite,

    /// <summary>Memory only: a restart forgets every lease, node, bus and tool. For tests, embedding and throwaway CI registries.</summary>
    Memory,
}

/// <summary>What a commit survives (PROTOCOL.md section 7).</summary>
public enum StoreDurability
{
    /// <summary>A crash or kill of the registry process (the default): each commit is written to the OS before any reply or broadcast; no fsync per commit.</summary>
    Process,

    /// <summary>Power loss or an OS crash as well: each commit is fsynced before any reply or broadcast.</summary>
    Power,
}

/// <summary>
/// The registry's state store. Immutable; change with <c>with</c>:
/// <c>RegistryStoreOptions.Default with { DataDirectory = "/var/lib/onex" }</c>.
/// </summary>
public sealed record RegistryStoreOptions
{
    /// <summary>The defaults: SQLite in <see cref="DefaultDataDirectory"/>, durable against a process crash.</summary>
    public static RegistryStoreOptions Default { get; } = new();

    /// <summary>An in-memory store (nothing survives a restart).</summary>
    public static RegistryStoreOptions InMemory { get; } = new() { Kind = RegistryStoreKind.Memory };

    /// <summary>SQLite (durable) or memory.</summary>
    public RegistryStoreKind Kind { get; init; } = RegistryStoreKind.Sqlite;

    /// <summary>The data directory of a SQLite store; <see cref="DefaultDataDirectory"/> when null.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>What a commit survives.</summary>
    public StoreDurability Durability { get; init; } = StoreDurability.Process;

    /// <summary>
    /// Largest size of the database file in bytes, or null for no limit but the disk's. A store that reaches it
    /// behaves as a full disk: requests that change state get UNAVAILABLE (reason <c>storage</c>) until space returns.
    /// </summary>
    public long? MaxSizeBytes { get; init; }

    /// <summary>The data directory actually used.</summary>
    public string ResolvedDataDirectory => DataDirectory ?? DefaultDataDirectory;

    /// <summary>
    /// The per-user default data directory: <c>$XDG_DATA_HOME/onex/registry</c>, or <c>~/.local/share/onex/registry</c>
    /// (the platform's local application data folder elsewhere).
    /// </summary>
    public static string DefaultDataDirectory =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify), "onex", "registry");
}
