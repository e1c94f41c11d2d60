using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Onex.Bus;

namespace Onex.Diagnostics;

/// <summary>
/// The queues behind the <c>onex.bus.queue.depth</c> gauge: every live subscription queue (<see cref="EventChannel"/>,
/// all backends) and every publisher queue (a ZeroMQ participant's outgoing queue) registers here while it is open.
/// An observation sums the events queued per bus, backend and queue kind, so two participants of one bus in one
/// process report one value, and registering costs nothing on the publish or delivery path.
/// </summary>
public static class BusQueueDepth
{
    /// <summary>The <c>queue</c> tag of subscription queues (events delivered to a subscription and not yet read).</summary>
    public const string Subscription = "subscription";

    /// <summary>The <c>queue</c> tag of publisher queues (events published and not yet handed to the transport).</summary>
    public const string Publisher = "publisher";

    private sealed record Source(EventBusHealth Health, string Queue, Func<long> Depth);

    private static readonly ConcurrentDictionary<object, Source> Live = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// Reports <paramref name="depth"/> (events queued now) as a <paramref name="queue"/> queue of the participant whose
    /// health is <paramref name="health"/> (its telemetry gives the bus and backend tags) until <see cref="Untrack"/>.
    /// </summary>
    public static void Track(object owner, EventBusHealth health, string queue, Func<long> depth)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(health);
        _ = OnexBusDiagnostics.QueueDepth; // the gauge exists once something has a queue
        Live[owner] = new Source(health, queue, depth);
    }

    /// <summary>Stops reporting <paramref name="owner"/>'s queue. Idempotent.</summary>
    public static void Untrack(object owner) => Live.TryRemove(owner, out _);

    internal static IEnumerable<Measurement<long>> Observe()
    {
        var sums = new Dictionary<(string Bus, string Backend, string Queue), long>();
        foreach (var source in Live.Values)
        {
            var telemetry = source.Health.Telemetry;
            var key = (telemetry.Bus, telemetry.Backend, source.Queue);
            sums[key] = sums.GetValueOrDefault(key) + source.Depth();
        }
        foreach (var ((bus, backend, queue), depth) in sums)
            yield return new Measurement<long>(depth, new("bus", bus), new("backend", backend), new("queue", queue));
    }
}
