using Onex.Protocol;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// The MessagePack body of the change being broadcast, serialised once: the watch history sizes it and the PUB
/// socket sends it, one after the other, for the same change. Remembers only the last change. Registry thread only.
/// </summary>
internal sealed class ChangeBodies
{
    private RegistryChange? _change;
    private byte[] _body = [];

    /// <summary>The body of <paramref name="change"/> (PROTOCOL.md 6.7), from the last call when it was the same change.</summary>
    public byte[] Of(RegistryChange change)
    {
        if (ReferenceEquals(change, _change)) return _body;
        _body = RegistryCodec.SerializeBody(change);
        _change = change;
        return _body;
    }
}
