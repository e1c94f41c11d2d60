namespace Onex.RegistryNode.Cluster;

/// <summary>
/// Cluster mode (docs/CLUSTER.md): the registry mirrors its host's nodes, buses and tools into a replicated JetStream
/// key-value bucket and merges every other host's entries into its own view. Immutable; change with <c>with</c>.
/// </summary>
public sealed record ClusterOptions
{
    /// <summary>The bucket every registry of a cluster shares.</summary>
    public const string DefaultBucket = "onex-registry";

    /// <summary>The NATS servers, comma-separated <c>nats://host:port</c> URLs (one is enough; the client learns the others).</summary>
    public required string Servers { get; init; }

    /// <summary>This registry's host name, unique in the cluster (<c>--host-name</c>; default the machine's name).</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>The key-value bucket's name.</summary>
    public string Bucket { get; init; } = DefaultBucket;

    /// <summary>Replicas of the bucket when this registry creates it; null: 3 when the NATS cluster has at least three servers, else 1.</summary>
    public int? Replicas { get; init; }

    /// <summary>How often this registry writes its heartbeat key.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A host whose heartbeat key did not change for this many of its intervals is unhealthy on every other host.</summary>
    public int MissedHeartbeats { get; init; } = 3;

    /// <summary>How long a host stays unhealthy before one registry (compare-and-set) removes its entries from the bucket.</summary>
    public TimeSpan RemovalGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest a registration waits for the bucket's compare-and-set before it is answered UNAVAILABLE (reason <c>cluster</c>).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Bucket writes a re-publication of this host's entries keeps in flight at once (after a start, a reconnect or a
    /// removal by another registry); 1 writes them one round trip at a time. Internal: a benchmark compares the two.
    /// </summary>
    internal int RepublishInFlight { get; init; } = 64;

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    internal void Check()
    {
        if (string.IsNullOrWhiteSpace(Servers)) throw new ArgumentException("The cluster's NATS servers are missing (--cluster nats://HOST:PORT[,...]).");
        foreach (var url in Servers.Split(',', StringSplitOptions.TrimEntries))
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != "nats" || uri.Port <= 0)
                throw new ArgumentException($"'{url}' is not a NATS server URL; write nats://HOST:PORT, e.g. nats://127.0.0.1:4222.");
        if (string.IsNullOrWhiteSpace(HostName) || HostName.Length > 256)
            throw new ArgumentException("The host name (--host-name) must be 1 to 256 characters.");
        try
        {
            Onex.Protocol.NatsToken.Escape(HostName);
        }
        catch (ArgumentException)
        {
            throw new ArgumentException("The host name (--host-name) holds a lone surrogate, which has no UTF-8 form.");
        }
        if (HeartbeatInterval <= TimeSpan.Zero || RemovalGrace < TimeSpan.Zero || MissedHeartbeats < 1 || RequestTimeout <= TimeSpan.Zero)
            throw new ArgumentException("Cluster timings are inconsistent: heartbeat interval and request timeout must be positive, missed heartbeats at least 1.");
        if (Replicas is { } r && r is < 1 or > 5) throw new ArgumentException("Bucket replicas must be 1 to 5.");
        if (RepublishInFlight < 1) throw new ArgumentException("A re-publication needs at least one write in flight.");
    }
}
