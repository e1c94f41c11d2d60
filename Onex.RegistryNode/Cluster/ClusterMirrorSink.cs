using Onex.Protocol;
using Onex.RegistryNode.Changes;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// Passes committed broadcasts on, then hands this host's node, bus and tool changes to the cluster member for the
/// bucket (a non-blocking queue write). Called on the registry thread, after the commit: the bucket never holds a
/// change the local store could take back.
/// </summary>
internal sealed class ClusterMirrorSink(IChangeSink inner, ClusterMember member) : IChangeSink
{
    public void Publish(RegistryChange change)
    {
        try
        {
            inner.Publish(change);
        }
        finally
        {
            member.Mirror(change);
        }
    }

    public void Publish(RegistryHeartbeat heartbeat) => inner.Publish(heartbeat);
}
