using System.Collections.Frozen;
using System.Text;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Tenants;
using Onex.RegistryNode.Tools;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// Access control on the registry thread (PROTOCOL.md section 16): who may send a request (<see cref="Admit"/>), and
/// what it may touch and see (<see cref="Invoke"/>). Tenants are namespaces: a node belongs to the tenant that
/// announced it, its leases, buses and tools with it, each record naming its tenant (<c>tenant</c>; the node's metadata
/// also as <see cref="TenantKey"/>), and node ids, bus names and tool versions are unique per tenant. A caller of
/// another tenant neither sees nor touches them; admins see and touch everything, naming the tenant when a name is in several.
/// </summary>
internal sealed class AuthGate
{
    /// <summary>The node metadata key holding the node's tenant (set by the registry; a client's own value is replaced).</summary>
    public const string TenantKey = "onex.tenant";

    // What a reader may send; node and admin tokens may send everything.
    private static readonly FrozenSet<string> ReaderTypes = new[]
    {
        typeof(ValidatePayload), typeof(IntrospectionRequest), typeof(SnapshotRequest),
    }.Select(MessageTypes.NameOf).ToFrozenSet(StringComparer.Ordinal);

    private readonly RegistryAuth _auth;
    private readonly TokenBuckets _requests;

    public AuthGate(RegistryAuth auth, TimeProvider time)
    {
        _auth = auth;
        _requests = new TokenBuckets(time);
    }

    /// <summary>
    /// Authenticates the envelope's token and checks its role and its tenant's request rate. Null when admitted
    /// (<paramref name="caller"/> set); else the refusal (UNAUTHENTICATED, PERMISSION_DENIED, QUOTA_EXCEEDED). The
    /// token never appears in a refusal or a log, only the token's name. A request <paramref name="uncharged"/> accepts
    /// (the flow control of an open watch, PROTOCOL.md 16.7) does not count against the request rate.
    /// </summary>
    public OnexException? Admit(RegistryEnvelope envelope, out AuthCaller? caller, Func<RegistryEnvelope, bool>? uncharged = null)
    {
        var configuration = _auth.Current;
        caller = configuration.Authenticate(envelope.Token);
        if (caller is null)
        {
            var reason = string.IsNullOrEmpty(envelope.Token) ? "missing" : "unknown";
            return new UnauthenticatedException(
                reason == "missing"
                    ? "This registry requires an access token: set ONEX_TOKEN (or the client's Token option, or onex --token)."
                    : "The access token is not one this registry knows (revoked, mistyped, or for another registry).",
                new Dictionary<string, string> { ["reason"] = reason });
        }
        if (caller.Role == AuthRoles.Reader && !ReaderTypes.Contains(envelope.MessageType) && RequestDispatcher.IsWrite(envelope.MessageType))
        {
            return Denied(caller, $"Token '{caller.TokenName}' has the role reader, which may read (introspection, snapshot, validation) but not send {envelope.MessageType}.",
                ("reason", "role"), ("messageType", envelope.MessageType), ("required", AuthRoles.Node));
        }
        if (configuration.Quotas.GetValueOrDefault(caller.Tenant)?.RequestsPerSecond is { } perSecond
            && uncharged?.Invoke(envelope) != true && !_requests.TryTake(caller.Tenant, perSecond))
        {
            return Quota(caller.Tenant, "requestsPerSecond", perSecond,
                $"Tenant '{caller.Tenant}' is over its quota of {perSecond} requests per second; slow down and retry with a new requestId.");
        }
        return null;
    }

    /// <summary>
    /// Runs one admitted request in its tenant (<see cref="TenantFor"/>): checks that it stays within the tenant's quotas
    /// (throwing the refusal before anything changes), stamps announcements with the tenant, and filters what reads
    /// return. Names are looked up within the tenant, so another tenant's entries neither clash with nor show to it.
    /// </summary>
    public byte[] Invoke(RegistryState registry, RegistryEnvelope envelope, AuthCaller caller, Func<RegistryState, RegistryEnvelope, byte[]> handle)
    {
        var tenant = TenantFor(registry, envelope, caller);
        switch (envelope.MessageType)
        {
            case nameof(PortRequest):
            {
                var request = DecodedBody.Of<PortRequest>(envelope);
                if (registry.Nodes.Find(request.NodeId, tenant!) is null)
                    throw Reject.NotFound($"Node '{request.NodeId}' has not announced itself; with access control on, a node announces itself (NodeAnnouncement) before it leases ports.",
                        ("nodeId", request.NodeId));
                if (QuotaOf(tenant!)?.Leases is { } limit)
                {
                    var held = registry.Leases.PerTenant.Of(tenant!);
                    if (held + Math.Max(request.Count, 0) > limit)
                        throw Quota(tenant!, "leases", limit, $"Tenant '{tenant}' holds {held} lease(s); {request.Count} more would exceed its quota of {limit}.",
                            ("held", held.ToString()), ("requested", request.Count.ToString()));
                }
                break;
            }
            case nameof(LeaseRenewal):
                CheckLease(registry, tenant!, DecodedBody.Of<LeaseRenewal>(envelope).LeaseId);
                break;
            case nameof(LeaseRelease):
                CheckLease(registry, tenant!, DecodedBody.Of<LeaseRelease>(envelope).LeaseId);
                break;
            case nameof(PortConflict):
                CheckLease(registry, tenant!, DecodedBody.Of<PortConflict>(envelope).LeaseId);
                break;
            case nameof(NodeAnnouncement):
                envelope = Announce(registry, envelope, tenant!);
                break;
            case nameof(EventBusRegistration):
            {
                var request = DecodedBody.Of<EventBusRegistration>(envelope);
                if (!registry.Buses.Contains(request.Name, tenant!) && QuotaOf(tenant!)?.Buses is { } limit)
                {
                    var count = registry.Buses.PerTenant.Of(tenant!);
                    if (count + 1 > limit)
                        throw Quota(tenant!, "buses", limit, $"Tenant '{tenant}' has {count} bus(es), its quota.", ("held", count.ToString()));
                }
                break;
            }
            case nameof(ToolContractRegistration):
                RegisterTool(registry, tenant!, DecodedBody.Of<ToolContractRegistration>(envelope));
                break;
            case nameof(IntrospectionRequest) when tenant is not null:
            {
                var response = registry.Handle(DecodedBody.Of<IntrospectionRequest>(envelope));
                response = response with
                {
                    Leases = response.Leases?.Where(l => TenantNames.Of(l.Tenant) == tenant).ToList(),
                    Nodes = response.Nodes?.Where(n => TenantNames.Of(n.Tenant) == tenant).ToList(),
                    Buses = response.Buses?.Where(b => TenantNames.Of(b.Tenant) == tenant).ToList(),
                    Tools = response.Tools?.Where(t => TenantNames.Of(t.Tenant) == tenant).ToList(),
                };
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, response);
            }
            case nameof(SnapshotRequest) when tenant is not null:
            {
                DecodedBody.Of<SnapshotRequest>(envelope);
                var snapshot = registry.Snapshot();
                snapshot = snapshot with
                {
                    Leases = snapshot.Leases.Where(l => TenantNames.Of(l.Tenant) == tenant).ToList(),
                    Nodes = snapshot.Nodes.Where(n => TenantNames.Of(n.Tenant) == tenant).ToList(),
                    Buses = snapshot.Buses.Where(b => TenantNames.Of(b.Tenant) == tenant).ToList(),
                    Tools = snapshot.Tools.Where(t => TenantNames.Of(t.Tenant) == tenant).ToList(),
                };
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, snapshot);
            }
        }
        return registry.InTenant(tenant ?? caller.Tenant, () => handle(registry, envelope));
    }

    /// <summary>
    /// The tenant a request acts in (PROTOCOL.md 16.3): the envelope's <c>tenant</c> when set (another tenant than
    /// the token's only for an admin); else the token's tenant; for an admin, the one tenant holding the node, lease
    /// or tool the request names (its own tenant when none does; INVALID_ARGUMENT, <c>reason</c> <c>ambiguous</c>,
    /// when several do). Null for an admin's introspection or snapshot without a tenant: every tenant.
    /// </summary>
    private string? TenantFor(RegistryState registry, RegistryEnvelope envelope, AuthCaller caller)
    {
        if (envelope.Tenant is { } named)
        {
            if (named == caller.Tenant) return named;
            if (!caller.IsAdmin)
                throw Denied(caller, $"Token '{caller.TokenName}' acts only in its own tenant '{caller.Tenant}', not in '{named}'.",
                    ("reason", "tenant"), ("requestedTenant", named));
            if (named != TenantNames.Default && !_auth.Current.Quotas.ContainsKey(named)
                && registry.Nodes.PerTenant.Of(named) == 0 && registry.Leases.PerTenant.Of(named) == 0)
                throw Reject.InvalidArgument("tenant", $"No tenant '{named}' is in the auth file or holds anything here.", ("value", named));
            return named;
        }
        if (!caller.IsAdmin) return caller.Tenant;
        var (what, holders) = envelope.MessageType switch
        {
            nameof(PortRequest) => NodeHolders(registry, DecodedBody.Of<PortRequest>(envelope).NodeId),
            nameof(NodeAnnouncement) => NodeHolders(registry, DecodedBody.Of<NodeAnnouncement>(envelope).NodeId),
            nameof(NodeHeartbeat) => NodeHolders(registry, DecodedBody.Of<NodeHeartbeat>(envelope).NodeId),
            nameof(NodeDeparture) => NodeHolders(registry, DecodedBody.Of<NodeDeparture>(envelope).NodeId),
            nameof(EventBusRegistration) => NodeHolders(registry, DecodedBody.Of<EventBusRegistration>(envelope).NodeId),
            nameof(EventBusDeregistration) => NodeHolders(registry, DecodedBody.Of<EventBusDeregistration>(envelope).NodeId),
            nameof(ToolContractRegistration) => NodeHolders(registry, DecodedBody.Of<ToolContractRegistration>(envelope).NodeId),
            nameof(LeaseRenewal) => LeaseHolder(registry, DecodedBody.Of<LeaseRenewal>(envelope).LeaseId),
            nameof(LeaseRelease) => LeaseHolder(registry, DecodedBody.Of<LeaseRelease>(envelope).LeaseId),
            nameof(PortConflict) => LeaseHolder(registry, DecodedBody.Of<PortConflict>(envelope).LeaseId),
            nameof(ValidatePayload) => ToolHolders(registry, DecodedBody.Of<ValidatePayload>(envelope).ToolName),
            _ => (null, null),
        };
        if (holders is null) return null;
        return holders.Count switch
        {
            0 => caller.Tenant,
            1 => holders[0],
            _ => throw Reject.InvalidArgument("tenant",
                $"{what} exists in tenants {string.Join(", ", holders)}; name the tenant in the envelope's 'tenant'.",
                ("reason", "ambiguous"), ("tenants", string.Join(",", holders))),
        };
    }

    // The tenants holding a name, found through the tenants that hold anything of its kind (counted, not scanned).
    private static (string, List<string>) NodeHolders(RegistryState registry, string nodeId) =>
        ($"Node '{nodeId}'", registry.Nodes.PerTenant.Tenants.Where(t => registry.Nodes.Find(nodeId, t) is not null).Order(StringComparer.Ordinal).ToList());

    private static (string, List<string>) ToolHolders(RegistryState registry, string toolName) =>
        ($"Tool '{toolName}'", registry.Tools.PerTenant.Tenants.Where(t => registry.Tools.HasName(toolName, t)).Order(StringComparer.Ordinal).ToList());

    private static (string, List<string>) LeaseHolder(RegistryState registry, string leaseId) =>
        ($"Lease '{leaseId}'", registry.Leases.Find(leaseId) is { } lease ? [TenantNames.Of(lease.Tenant)] : []);

    private TenantQuotas? QuotaOf(string tenant) => _auth.Current.Quotas.GetValueOrDefault(tenant);

    private static void CheckLease(RegistryState registry, string tenant, string leaseId)
    {
        // Another tenant's lease does not exist for this caller (its holder is not even named).
        if (registry.Leases.Find(leaseId) is { } lease && TenantNames.Of(lease.Tenant) != tenant)
            throw Reject.Lease(ErrorCodes.LeaseNotFound, $"No live lease '{leaseId}'.", ("leaseId", leaseId));
    }

    private RegistryEnvelope Announce(RegistryState registry, RegistryEnvelope envelope, string tenant)
    {
        var announcement = DecodedBody.Of<NodeAnnouncement>(envelope);
        if (registry.Nodes.Find(announcement.NodeId, tenant) is null && QuotaOf(tenant)?.Nodes is { } limit)
        {
            var count = registry.Nodes.PerTenant.Of(tenant);
            if (count + 1 > limit)
                throw Quota(tenant, "nodes", limit, $"Tenant '{tenant}' has {count} node(s), its quota.", ("held", count.ToString()));
        }
        var metadata = new Dictionary<string, string>(announcement.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            [TenantKey] = tenant,
        };
        return envelope with { Body = RegistryCodec.SerializeBody(announcement with { Metadata = metadata }) };
    }

    private void RegisterTool(RegistryState registry, string tenant, ToolContractRegistration request)
    {
        if (registry.Tools.Contains(request.Name + "@" + request.Version, tenant)) return; // idempotent, or a conflict the registry reports
        var quotas = QuotaOf(tenant);
        var count = registry.Tools.PerTenant.Of(tenant);
        if (quotas?.Tools is { } limit && count + 1 > limit)
            throw Quota(tenant, "tools", limit, $"Tenant '{tenant}' has {count} tool contract(s), its quota.", ("held", count.ToString()));
        if (quotas?.SchemaBytes is { } bytes)
        {
            var held = registry.Tools.SchemaBytesPerTenant.Of(tenant);
            var adding = ToolCatalog.SchemaBytesOf(request.InputSchema, request.OutputSchema);
            if (held + adding > bytes)
                throw Quota(tenant, "schemaBytes", bytes, $"Tenant '{tenant}' holds {held} bytes of tool schemas; {adding} more would exceed its quota of {bytes}.",
                    ("held", held.ToString()), ("requested", adding.ToString()));
        }
    }

    private static AccessDeniedException Denied(AuthCaller caller, string message, params (string Key, string Value)[] details)
    {
        var all = new Dictionary<string, string> { ["tenant"] = caller.Tenant, ["role"] = caller.Role, ["tokenName"] = caller.TokenName };
        foreach (var (key, value) in details) all[key] = value;
        return new PermissionDeniedException(message, all);
    }

    private static AccessDeniedException Quota(string tenant, string quota, long limit, string message, params (string Key, string Value)[] details)
    {
        var all = new Dictionary<string, string> { ["tenant"] = tenant, ["quota"] = quota, ["limit"] = limit.ToString() };
        foreach (var (key, value) in details) all[key] = value;
        return new QuotaExceededException(message, all);
    }
}
