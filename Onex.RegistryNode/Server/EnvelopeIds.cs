using MessagePack;

namespace Onex.RegistryNode.Server;

/// <summary>Best-effort reading of <c>requestId</c> and <c>clientId</c> from a frame that failed to decode, so the Error reply can still be correlated.</summary>
internal static class EnvelopeIds
{
    public static (string? RequestId, string? ClientId) TryRead(ReadOnlyMemory<byte> frame)
    {
        string? requestId = null, clientId = null;
        try
        {
            var reader = new MessagePackReader(frame);
            if (reader.NextMessagePackType != MessagePackType.Map) return (null, null);
            var count = reader.ReadMapHeader();
            for (var i = 0; i < count && (requestId is null || clientId is null); i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String) break;
                var key = reader.ReadString();
                if (key is "requestId" or "clientId" && reader.NextMessagePackType == MessagePackType.String)
                {
                    if (key == "requestId") requestId = reader.ReadString();
                    else clientId = reader.ReadString();
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or OverflowException)
        {
            // Whatever was read before the damage is still worth echoing.
        }
        return (requestId, clientId);
    }
}
