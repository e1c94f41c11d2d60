using System.Buffers;
using Onex.Protocol;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// The MessagePack body of the change being broadcast, serialised once into one reused buffer: the watch history
/// copies it and the PUB socket's event encoding copies it, one after the other, for the same change. Remembers only
/// the last change, and its bytes are valid until the next change's are asked for. Registry thread only.
/// </summary>
internal sealed class ChangeBodies
{
    private const int Capacity = 1024;
    // A change body this large (a tool's schemas) does not keep its buffer for the changes after it.
    private const int MaxKeptCapacity = 64 * 1024;

    private RegistryChange? _change;
    private ArrayBufferWriter<byte> _body = new(Capacity);

    /// <summary>
    /// The body of <paramref name="change"/> (PROTOCOL.md 6.7), from the last call when it was the same change. Copy it
    /// before asking for another change's body.
    /// </summary>
    public ReadOnlyMemory<byte> Of(RegistryChange change)
    {
        if (ReferenceEquals(change, _change)) return _body.WrittenMemory;
        if (_body.Capacity > MaxKeptCapacity) _body = new ArrayBufferWriter<byte>(Capacity);
        _body.ResetWrittenCount();
        RegistryCodec.SerializeBodyTo(_body, change);
        _change = change;
        return _body.WrittenMemory;
    }
}
