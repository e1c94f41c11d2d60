using Onex.Protocol;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// Holds broadcasts until the changes they announce are stored (write-ahead: nothing is broadcast that a crash could
/// take back), then passes them on in order; drops them when the commit failed and the state was rolled back.
/// Owned by the registry thread.
/// </summary>
internal sealed class DeferredChangeSink(IChangeSink inner) : IChangeSink
{
    private readonly List<object> _held = [];

    public void Publish(RegistryChange change) => _held.Add(change);

    public void Publish(RegistryHeartbeat heartbeat) => _held.Add(heartbeat);

    /// <summary>Passes every held broadcast on, in order; <paramref name="failed"/> hears of each one the inner sink refused.</summary>
    public void Flush(Action<Exception, object> failed)
    {
        foreach (var item in _held)
        {
            try
            {
                if (item is RegistryChange change) inner.Publish(change);
                else inner.Publish((RegistryHeartbeat)item);
            }
            catch (Exception ex)
            {
                // A subscriber sees the missing number as a gap (or through the next heartbeat) and resyncs by snapshot.
                failed(ex, item);
            }
        }
        _held.Clear();
    }

    /// <summary>Drops every held broadcast (their changes were rolled back).</summary>
    public void Discard() => _held.Clear();
}
