using Onex.Protocol;

namespace Onex.RegistryNode.Changes;

/// <summary>Where the journal sends changes and heartbeats: the PUB socket in the node, a list in tests.</summary>
internal interface IChangeSink
{
    /// <summary>Broadcasts one change. Called on the registry thread, in sequence order.</summary>
    void Publish(RegistryChange change);

    /// <summary>Broadcasts a heartbeat. Called on the registry thread.</summary>
    void Publish(RegistryHeartbeat heartbeat);
}
