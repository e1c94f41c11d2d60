using Onex.Protocol;
using Onex.RegistryNode.Metrics;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// Passes committed broadcasts to the PUB socket and, when one is attached, to an in-process observer (the HTTP
/// endpoint's view). Counts the broadcasts the PUB socket refused. Called on the registry thread, after the commit.
/// </summary>
internal sealed class ObservedChangeSink(IChangeSink inner, RegistryMetrics metrics) : IChangeSink
{
    private IChangeSink? _observer;

    /// <summary>Attaches <paramref name="observer"/>; false when one is attached already. It must not block: it is called on the registry thread.</summary>
    public bool Attach(IChangeSink observer) => Interlocked.CompareExchange(ref _observer, observer, null) is null;

    /// <summary>Detaches <paramref name="observer"/> if it is the one attached.</summary>
    public void Detach(IChangeSink observer) => Interlocked.CompareExchange(ref _observer, null, observer);

    public void Publish(RegistryChange change)
    {
        Volatile.Read(ref _observer)?.Publish(change);
        try
        {
            inner.Publish(change);
        }
        catch
        {
            metrics.PubDropped();
            throw; // the flush logs it; subscribers see the gap and resync
        }
    }

    public void Publish(RegistryHeartbeat heartbeat)
    {
        Volatile.Read(ref _observer)?.Publish(heartbeat);
        try
        {
            inner.Publish(heartbeat);
        }
        catch
        {
            metrics.PubDropped();
            throw;
        }
    }
}
