using MessagePack;

namespace Onex.RegistryNode.Storage;

/// <summary>Reads the records the registry stored itself (tools, nodes, buses) back at start.</summary>
internal static class StoredRecords
{
    /// <summary>
    /// Deserializes a record this registry wrote after checking it as a request body. The wire's checks for untrusted
    /// input (a pass over every string for valid UTF-8, a walk for missing fields) are not repeated: at start they ran
    /// on every stored tool's schema text before the node could serve. A row that is not a <typeparamref name="T"/>
    /// at all is a <see cref="RegistryStoreException"/>.
    /// </summary>
    public static T Read<T>(ReadOnlyMemory<byte> value, StoredKind kind) where T : class
    {
        try
        {
            return MessagePackSerializer.Deserialize<T>(value, MessagePackSerializerOptions.Standard)
                   ?? throw new RegistryStoreException($"A stored {kind} row is empty. Restore a backup, or move the store away to start empty.");
        }
        catch (MessagePackSerializationException ex)
        {
            throw new RegistryStoreException($"A stored {kind} row cannot be read ({ex.Message.TrimEnd('.')}). Restore a backup, or move the store away to start empty.", ex);
        }
    }
}
