using NetMQ;
using Onex.RegistryNode.Watches;

namespace Onex.RegistryNode.Server;

internal sealed partial class RegistryServer
{
    /// <summary>
    /// Sends one watch stream message to <paramref name="identity"/> without blocking, under the same per-peer bounds as
    /// replies (section 14); a message that does not fit now stays with the watch and is tried on a later turn.
    /// </summary>
    private StreamSendOutcome SendStream(byte[] identity, bool viaReq, byte[] frame)
    {
        var peer = new NetMQFrame(identity);
        try
        {
            var sent = frame.Length >= PeerBounds.LargeReplyBytes ? SendLarge(peer, viaReq, frame) : SendSmall(peer, viaReq, frame);
            return sent ? StreamSendOutcome.Sent : StreamSendOutcome.Full;
        }
        catch (HostUnreachableException)
        {
            return StreamSendOutcome.Gone;
        }
    }
}
