using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Onex.RegistryNode.Metrics;

/// <summary>The current values behind the registry's gauges, published as one immutable sample.</summary>
/// <param name="Leases">Active leases.</param>
/// <param name="FreePorts">Ports ready to lease.</param>
/// <param name="QuarantinedPorts">Ports resting in quarantine.</param>
/// <param name="NodesByHealth">Nodes per health value.</param>
/// <param name="BusesByHealth">Buses per health value.</param>
/// <param name="Tools">Tool contracts.</param>
/// <param name="Sequence">The sequence number of the latest change.</param>
internal sealed record RegistryGauges(
    int Leases, int FreePorts, int QuarantinedPorts, IReadOnlyDictionary<string, int> NodesByHealth,
    IReadOnlyDictionary<string, int> BusesByHealth, int Tools, long Sequence);

/// <summary>
/// The registry's instruments, on a <see cref="Meter"/> named <see cref="MeterName"/> (one per node). Counting costs a
/// check of <see cref="Instrument.Enabled"/> when nothing listens, and no allocation when something does. The
/// gauges read a sample published by the HTTP side (<see cref="Gauges"/>); the registry thread is never asked.
/// Names and units follow OpenTelemetry's conventions; the Prometheus exporter turns <c>onex.registry.requests</c>
/// into <c>onex_registry_requests_total</c> (Onex.RegistryNode/README.md lists every metric).
/// </summary>
internal sealed class RegistryMetrics : IDisposable
{
    public const string MeterName = "Onex.Registry";

    /// <summary>The type label of a request whose envelope could not be read.</summary>
    public const string UnreadableType = "unreadable";

    /// <summary>The type label of a request naming a message type the registry does not answer.</summary>
    public const string UnknownType = "unknown";

    /// <summary>The code label of a successful reply.</summary>
    public const string Ok = "OK";

    private static readonly double[] DurationBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _pubDropped;
    private readonly Counter<long> _sseDropped;
    private Func<RegistryGauges?>? _gaugeSource;

    public RegistryMetrics()
    {
        Meter = new Meter(MeterName);
        _requests = Meter.CreateCounter<long>("onex.registry.requests", "{request}",
            "Requests answered, by message type and reply code (OK or the error code).");
        _duration = Meter.CreateHistogram("onex.registry.request.duration", "s",
            "Time from taking a request off the socket to its reply being ready (before the commit), by message type.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _pubDropped = Meter.CreateCounter<long>("onex.registry.pub.dropped", "{broadcast}",
            "Broadcasts the PUB socket refused; subscribers see the gap and resync by snapshot.");
        _sseDropped = Meter.CreateCounter<long>("onex.registry.http.sse.dropped", "{client}",
            "Server-Sent-Events clients of /api/changes dropped for falling behind.");
        Meter.CreateObservableGauge("onex.registry.leases.active", () => Gauges?.Leases ?? 0, "{lease}", "Port leases held.");
        Meter.CreateObservableGauge("onex.registry.ports.free", () => Gauges?.FreePorts ?? 0, "{port}", "Ports ready to lease.");
        Meter.CreateObservableGauge("onex.registry.ports.quarantined", () => Gauges?.QuarantinedPorts ?? 0, "{port}", "Released or expired ports resting before reuse.");
        Meter.CreateObservableGauge("onex.registry.nodes", () => ByHealth(Gauges?.NodesByHealth), "{node}", "Registered nodes, by health.");
        Meter.CreateObservableGauge("onex.registry.buses", () => ByHealth(Gauges?.BusesByHealth), "{bus}", "Registered buses, by health.");
        Meter.CreateObservableGauge("onex.registry.tools", () => Gauges?.Tools ?? 0, "{tool}", "Registered tool contracts.");
        Meter.CreateObservableGauge("onex.registry.change.sequence", () => Gauges?.Sequence ?? 0, "{change}", "Sequence number of the latest change (within the epoch).");
    }

    /// <summary>Cluster mode's counters (docs/CLUSTER.md), read from the cluster member when scraped.</summary>
    public void ObserveCluster(Func<long> watchRestarts, Func<long> rejoins, Func<long> hostsRemoved)
    {
        Meter.CreateObservableCounter("onex.registry.cluster.watch.restarts", watchRestarts, "{restart}",
            "Watches of the cluster bucket the watchdog re-created because they stopped delivering.");
        Meter.CreateObservableCounter("onex.registry.cluster.rejoins", rejoins, "{rejoin}",
            "Times this host published all its entries again after another registry removed it (judged dead while alive).");
        Meter.CreateObservableCounter("onex.registry.cluster.hosts.removed", hostsRemoved, "{host}",
            "Stale hosts this registry removed from the cluster bucket (it won the compare-and-set).");
    }

    /// <summary>The background free checks (PROTOCOL.md section 7), read when scraped: ports bound, ports answered from the socket tables.</summary>
    public void ObserveFreeChecks(Func<long> bound, Func<long> fromTables)
    {
        Meter.CreateObservableCounter("onex.registry.port.checks", () => (IEnumerable<Measurement<long>>)
        [
            new Measurement<long>(bound(), new KeyValuePair<string, object?>("way", "bind")),
            new Measurement<long>(fromTables(), new KeyValuePair<string, object?>("way", "table")),
        ], "{port}", "Background free checks of ports, by how they were answered: bind (bound for TCP and UDP) or table (one reading of the kernel's socket tables answered the batch).");
    }

    /// <summary>The request socket's intake bound (PROTOCOL.md section 14), read when scraped.</summary>
    public void ObserveIntake(Func<long> connectionsCut, Func<long> receivedBytes)
    {
        Meter.CreateObservableCounter("onex.registry.connections.cut", connectionsCut, "{cut}",
            "Times the registry closed every connection of its request socket because ZeroMQ held more received frames than the bound.");
        Meter.CreateObservableGauge("onex.registry.received.bytes", receivedBytes, "By",
            "Bytes of received frames ZeroMQ holds in the process, not yet handed to a socket's reader (unfinished messages included).");
    }

    /// <summary>The meter every instrument belongs to.</summary>
    public Meter Meter { get; }

    /// <summary>Where the gauges read their values (the HTTP side's view); none: the gauges report nothing.</summary>
    public Func<RegistryGauges?>? GaugeSource
    {
        get => Volatile.Read(ref _gaugeSource);
        set => Volatile.Write(ref _gaugeSource, value);
    }

    private RegistryGauges? Gauges => GaugeSource?.Invoke();

    /// <summary>True when something listens to the request instruments (measure time only then).</summary>
    public bool RequestsObserved => _requests.Enabled || _duration.Enabled;

    /// <summary>Counts one answered request. <paramref name="type"/> and <paramref name="code"/> come from closed sets.</summary>
    public void Request(string type, string code, TimeSpan? took)
    {
        _requests.Add(1, new KeyValuePair<string, object?>("type", type), new KeyValuePair<string, object?>("code", code));
        if (took is { } duration)
            _duration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("type", type));
    }

    public void PubDropped() => _pubDropped.Add(1);

    public void SseDropped() => _sseDropped.Add(1);

    private static IEnumerable<Measurement<int>> ByHealth(IReadOnlyDictionary<string, int>? counts)
    {
        if (counts is null) yield break;
        foreach (var (health, count) in counts)
            yield return new Measurement<int>(count, new KeyValuePair<string, object?>("health", health));
    }

    public void Dispose() => Meter.Dispose();
}
