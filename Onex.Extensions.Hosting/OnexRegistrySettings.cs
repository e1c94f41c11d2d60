using Onex.Transports.Registry;

namespace Onex.Extensions.Hosting;

/// <summary>
/// The registry client's settings as bound from configuration (the <c>Onex</c> section). Absent values keep
/// <see cref="RegistryClientOptions"/>' defaults, including the <c>ONEX_REGISTRY_ENDPOINT</c> and
/// <c>ONEX_REGISTRY_PUB_ENDPOINT</c> environment variables.
/// </summary>
public sealed class OnexRegistrySettings
{
    /// <summary>The registry's ROUTER endpoint, e.g. <c>tcp://127.0.0.1:5750</c>.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The registry's PUB endpoint.</summary>
    public string? PubEndpoint { get; set; }

    /// <summary>This node's id (unique among live nodes); generated when absent.</summary>
    public string? NodeId { get; set; }

    /// <summary>A readable name for this node; the application name when absent.</summary>
    public string? NodeName { get; set; }

    /// <summary>How often this node heartbeats (e.g. <c>00:00:05</c>).</summary>
    public TimeSpan? HeartbeatInterval { get; set; }

    /// <summary>How long one attempt of a request waits for its reply.</summary>
    public TimeSpan? RequestTimeout { get; set; }

    /// <summary>Attempts per request before it fails.</summary>
    public int? MaxAttempts { get; set; }

    /// <summary>The tenant requests act in (<see cref="RegistryClientOptions.Tenant"/>); <c>ONEX_TENANT</c>, else the token's, when absent.</summary>
    public string? Tenant { get; set; }

    /// <summary>Turns these settings into client options over <paramref name="defaults"/>.</summary>
    public RegistryClientOptions ToOptions(RegistryClientOptions? defaults = null)
    {
        var options = defaults ?? RegistryClientOptions.Default;
        if (!string.IsNullOrWhiteSpace(Endpoint)) options = options with { Endpoint = Endpoint.Trim() };
        if (!string.IsNullOrWhiteSpace(PubEndpoint)) options = options with { PubEndpoint = PubEndpoint.Trim() };
        if (!string.IsNullOrWhiteSpace(NodeId)) options = options with { NodeId = NodeId.Trim() };
        if (!string.IsNullOrWhiteSpace(NodeName)) options = options with { NodeName = NodeName.Trim() };
        if (HeartbeatInterval is { } heartbeat) options = options with { HeartbeatInterval = heartbeat };
        if (RequestTimeout is { } timeout) options = options with { RequestTimeout = timeout };
        if (MaxAttempts is { } attempts) options = options with { MaxAttempts = attempts };
        if (!string.IsNullOrWhiteSpace(Tenant)) options = options with { Tenant = Tenant.Trim() };
        return options;
    }

    internal IEnumerable<string> Problems()
    {
        foreach (var (name, endpoint) in new[] { (nameof(Endpoint), Endpoint), (nameof(PubEndpoint), PubEndpoint) })
            if (!string.IsNullOrWhiteSpace(endpoint) && !endpoint.Trim().StartsWith("tcp://", StringComparison.Ordinal) && !endpoint.Trim().StartsWith("ipc://", StringComparison.Ordinal))
                yield return $"Onex:{name} '{endpoint}' is not a ZeroMQ endpoint; write it as tcp://HOST:PORT (or ipc://PATH).";
        if (HeartbeatInterval is { } heartbeat && heartbeat <= TimeSpan.Zero) yield return $"Onex:HeartbeatInterval must be positive (got {heartbeat}).";
        if (RequestTimeout is { } timeout && timeout <= TimeSpan.Zero) yield return $"Onex:RequestTimeout must be positive (got {timeout}).";
        if (MaxAttempts is < 1) yield return $"Onex:MaxAttempts must be at least 1 (got {MaxAttempts}).";
    }
}
