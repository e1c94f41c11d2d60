using Onex.Protocol;
using Onex.RegistryNode.Changes;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// What the PUB endpoint carries with access control on: heartbeats only. A PUB socket cannot tell subscribers
/// apart, so changes (which name tenants' nodes, leases, buses and tools) do not go there; a heartbeat's sequence
/// still tells a replica that something changed, and it resyncs by a snapshot its token filters (PROTOCOL.md 16.6).
/// </summary>
internal sealed class HeartbeatOnlyChangeSink(IChangeSink inner) : IChangeSink
{
    public void Publish(RegistryChange change)
    {
    }

    public void Publish(RegistryHeartbeat heartbeat) => inner.Publish(heartbeat);
}
