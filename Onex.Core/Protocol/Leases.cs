using MessagePack;

namespace Onex.Protocol;

/// <summary>Asks the registry for one or more ports. Reply: <see cref="PortGrant"/>.</summary>
[MessagePackObject]
public sealed record PortRequest
{
    /// <summary>The node that will hold the leases (must have announced itself, or is created on first use).</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>How many ports, 1 to the documented maximum (64).</summary>
    [Key("count")] public int Count { get; init; } = 1;
    /// <summary>Requested TTL in milliseconds; clamped by the registry to its bounds. Null: the registry's default.</summary>
    [Key("ttlMs")] public long? TtlMs { get; init; }
    /// <summary>A port wanted if it is free (only for the first port of the request); otherwise any port is granted.</summary>
    [Key("preferredPort")] public int? PreferredPort { get; init; }
    /// <summary>What the port is checked free for: <c>tcp</c>, <c>udp</c> or <c>both</c>.</summary>
    [Key("protocol")] public string Protocol { get; init; } = PortProtocols.Both;
    /// <summary>Free text recorded with the lease (e.g. a test name), shown by introspection.</summary>
    [Key("purpose")] public string? Purpose { get; init; }
    /// <summary>
    /// Re-assertion after a registry restart: the requester held <see cref="PreferredPort"/> under an earlier
    /// registry epoch and may still have it bound, so the free check is skipped for it. Granted only when the
    /// port is in the pool and no live lease holds it; otherwise PORT_UNAVAILABLE. Requires <see cref="PreferredPort"/> and <see cref="Count"/> 1.
    /// </summary>
    [Key("reclaim")] public bool Reclaim { get; init; }
}

/// <summary>Values of <see cref="PortRequest.Protocol"/>.</summary>
public static class PortProtocols
{
    /// <summary>TCP only.</summary>
    public const string Tcp = "tcp";
    /// <summary>UDP only.</summary>
    public const string Udp = "udp";
    /// <summary>TCP and UDP.</summary>
    public const string Both = "both";
}

/// <summary>Reply to <see cref="PortRequest"/>: the leases granted, all or nothing.</summary>
[MessagePackObject]
public sealed record PortGrant
{
    /// <summary>One lease per port granted, in request order.</summary>
    [Key("leases")] public required IReadOnlyList<PortLease> Leases { get; init; }
}

/// <summary>A leased port. Also the reply to <see cref="LeaseRenewal"/> and <see cref="PortConflict"/>.</summary>
[MessagePackObject]
public sealed record PortLease
{
    /// <summary>Registry-assigned lease id.</summary>
    [Key("leaseId")] public required string LeaseId { get; init; }
    /// <summary>The leased port.</summary>
    [Key("port")] public int Port { get; init; }
    /// <summary>The host the port is on (the registry's host, e.g. <c>127.0.0.1</c>).</summary>
    [Key("host")] public required string Host { get; init; }
    /// <summary>The holder node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary><c>tcp</c>, <c>udp</c> or <c>both</c>.</summary>
    [Key("protocol")] public string Protocol { get; init; } = PortProtocols.Both;
    /// <summary>The TTL the registry decided, milliseconds.</summary>
    [Key("ttlMs")] public long TtlMs { get; init; }
    /// <summary>When the lease was granted, Unix ms.</summary>
    [Key("grantedAt")] public long GrantedAt { get; init; }
    /// <summary>The earliest time the lease can expire, Unix ms (last renewal + TTL).</summary>
    [Key("expiresAt")] public long ExpiresAt { get; init; }
    /// <summary>Monotonic fencing token; renew, release and conflict must present the current one.</summary>
    [Key("fencingToken")] public long FencingToken { get; init; }
    /// <summary>Free text from the request.</summary>
    [Key("purpose")] public string? Purpose { get; init; }
    /// <summary>The tenant owning this entry (PROTOCOL.md section 16.3); null means <c>default</c> (always so without an auth file).</summary>
    [Key("tenant")] public string? Tenant { get; init; }
}

/// <summary>Extends a lease by its TTL from now. Reply: the renewed <see cref="PortLease"/>.</summary>
[MessagePackObject]
public sealed record LeaseRenewal
{
    /// <summary>The lease to renew.</summary>
    [Key("leaseId")] public required string LeaseId { get; init; }
    /// <summary>The holder node; must match the lease's.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>The lease's current fencing token.</summary>
    [Key("fencingToken")] public long FencingToken { get; init; }
}

/// <summary>Gives a lease back; the port goes to quarantine. Reply: <see cref="Ack"/>.</summary>
[MessagePackObject]
public sealed record LeaseRelease
{
    /// <summary>The lease to release.</summary>
    [Key("leaseId")] public required string LeaseId { get; init; }
    /// <summary>The holder node; must match the lease's.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>The lease's current fencing token.</summary>
    [Key("fencingToken")] public long FencingToken { get; init; }
}

/// <summary>
/// Reports that the holder could not bind its leased port. The registry quarantines that port, ends the
/// lease and grants a replacement. Reply: the replacement <see cref="PortLease"/>.
/// </summary>
[MessagePackObject]
public sealed record PortConflict
{
    /// <summary>The lease whose port could not be bound.</summary>
    [Key("leaseId")] public required string LeaseId { get; init; }
    /// <summary>The holder node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>The lease's current fencing token.</summary>
    [Key("fencingToken")] public long FencingToken { get; init; }
    /// <summary>What the bind failed with, for the log.</summary>
    [Key("reason")] public string? Reason { get; init; }
}
