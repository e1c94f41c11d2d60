using Onex.Protocol;
using Onex.RegistryNode.Changes;

namespace Onex.RegistryNode.Watches;

/// <summary>Hands every committed change and heartbeat to the watches first (they never throw), then to <paramref name="inner"/>.</summary>
internal sealed class WatchFanOut(IChangeSink inner, WatchHub watches) : IChangeSink
{
    public void Publish(RegistryChange change)
    {
        watches.Publish(change);
        inner.Publish(change);
    }

    public void Publish(RegistryHeartbeat heartbeat)
    {
        watches.Publish(heartbeat);
        inner.Publish(heartbeat);
    }
}
