using System.Collections.Frozen;
using System.Text;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// Access control on the registry thread (PROTOCOL.md section 16): who may send a request (<see cref="Admit"/>), and
/// what it may touch and see (<see cref="Invoke"/>). Tenants are namespaces of nodes: a node belongs to the tenant
/// that announced it (the registry writes the tenant into the node's metadata as <see cref="TenantKey"/>, so a durable
/// store keeps it across restarts), and its leases, buses and tools belong to that tenant with it. A caller of another
/// tenant neither sees nor touches them; admins see and touch everything, the tenant named in each node.
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
    private readonly TimeProvider _time;
    private readonly Dictionary<string, (double Tokens, long At)> _buckets = new(StringComparer.Ordinal);

    public AuthGate(RegistryAuth auth, TimeProvider time)
    {
        _auth = auth;
        _time = time;
    }

    /// <summary>
    /// Authenticates the envelope's token and checks its role and its tenant's request rate. Null when admitted
    /// (<paramref name="caller"/> set); else the refusal (UNAUTHENTICATED, PERMISSION_DENIED, QUOTA_EXCEEDED). The
    /// token never appears in a refusal or a log, only the token's name.
    /// </summary>
    public OnexException? Admit(RegistryEnvelope envelope, out AuthCaller? caller)
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
        if (configuration.Quotas.GetValueOrDefault(caller.Tenant)?.RequestsPerSecond is { } perSecond && !TakeRequest(caller.Tenant, perSecond))
        {
            return Quota(caller, "requestsPerSecond", perSecond,
                $"Tenant '{caller.Tenant}' is over its quota of {perSecond} requests per second; slow down and retry with a new requestId.");
        }
        return null;
    }

    /// <summary>
    /// Runs one admitted request: checks that it touches only the caller's tenant and stays within its quotas (throwing
    /// the refusal before anything changes), stamps announcements with the tenant, and filters what reads return.
    /// </summary>
    public byte[] Invoke(RegistryState registry, RegistryEnvelope envelope, AuthCaller caller, Func<RegistryState, RegistryEnvelope, byte[]> handle)
    {
        switch (envelope.MessageType)
        {
            case nameof(PortRequest):
            {
                var request = envelope.BodyAs<PortRequest>();
                RequireOwnNode(registry, caller, request.NodeId, mustExist: true);
                var tenant = TenantOfNode(registry, request.NodeId) ?? caller.Tenant;
                if (QuotaOf(tenant)?.Leases is { } limit)
                {
                    var held = registry.Leases.Leases.Count(l => TenantOfNode(registry, l.NodeId) == tenant);
                    if (held + Math.Max(request.Count, 0) > limit)
                        throw Quota(caller, "leases", limit, $"Tenant '{tenant}' holds {held} lease(s); {request.Count} more would exceed its quota of {limit}.",
                            ("held", held.ToString()), ("requested", request.Count.ToString()));
                }
                break;
            }
            case nameof(LeaseRenewal):
                CheckLease(registry, caller, envelope.BodyAs<LeaseRenewal>().LeaseId, envelope.BodyAs<LeaseRenewal>().NodeId);
                break;
            case nameof(LeaseRelease):
                CheckLease(registry, caller, envelope.BodyAs<LeaseRelease>().LeaseId, envelope.BodyAs<LeaseRelease>().NodeId);
                break;
            case nameof(PortConflict):
                CheckLease(registry, caller, envelope.BodyAs<PortConflict>().LeaseId, envelope.BodyAs<PortConflict>().NodeId);
                break;
            case nameof(NodeAnnouncement):
                envelope = Announce(registry, envelope, caller);
                break;
            case nameof(NodeHeartbeat):
                RequireOwnNode(registry, caller, envelope.BodyAs<NodeHeartbeat>().NodeId, mustExist: false);
                break;
            case nameof(NodeDeparture):
                RequireOwnNode(registry, caller, envelope.BodyAs<NodeDeparture>().NodeId, mustExist: false);
                break;
            case nameof(EventBusRegistration):
                RegisterBus(registry, caller, envelope.BodyAs<EventBusRegistration>());
                break;
            case nameof(EventBusDeregistration):
            {
                var request = envelope.BodyAs<EventBusDeregistration>();
                // Another tenant's bus does not exist for this caller.
                if (registry.Buses.Buses.FirstOrDefault(b => b.Name == request.Name) is { } bus && !Sees(registry, caller, bus.NodeId))
                    throw Reject.NotFound($"No bus named '{request.Name}'.", ("name", request.Name));
                RequireOwnNode(registry, caller, request.NodeId, mustExist: false);
                break;
            }
            case nameof(ToolContractRegistration):
                RegisterTool(registry, caller, envelope.BodyAs<ToolContractRegistration>());
                break;
            case nameof(ValidatePayload):
            {
                var request = envelope.BodyAs<ValidatePayload>();
                if (!caller.IsAdmin && registry.Tools.Tools.Any(t => t.Name == request.ToolName)
                    && !registry.Tools.Tools.Any(t => t.Name == request.ToolName && Sees(registry, caller, t.NodeId)))
                    throw Reject.NotFound($"No tool named '{request.ToolName}'.", ("toolName", request.ToolName), ("version", request.Version ?? ""));
                if (!caller.IsAdmin && request.Version is null)
                {
                    // "The highest version" means the highest this tenant can see.
                    var visible = registry.Tools.Tools.Where(t => t.Name == request.ToolName && Sees(registry, caller, t.NodeId))
                        .Select(t => t.Version).ToList();
                    if (visible.Count > 0 && registry.Tools.Tools.Count(t => t.Name == request.ToolName) != visible.Count)
                        throw Reject.InvalidArgument("version", "Name the version: another tenant registers versions of this tool too.");
                }
                else if (!caller.IsAdmin && registry.Tools.Tools.FirstOrDefault(t => t.Name == request.ToolName && t.Version == request.Version) is { } tool
                    && !Sees(registry, caller, tool.NodeId))
                {
                    throw Reject.NotFound($"No tool '{request.ToolName}' version {request.Version}.", ("toolName", request.ToolName), ("version", request.Version ?? ""));
                }
                break;
            }
            case nameof(IntrospectionRequest) when !caller.IsAdmin:
            {
                var response = registry.Handle(envelope.BodyAs<IntrospectionRequest>());
                response = response with
                {
                    Leases = response.Leases?.Where(l => Sees(registry, caller, l.NodeId)).ToList(),
                    Nodes = response.Nodes?.Where(n => Sees(registry, caller, n.NodeId)).ToList(),
                    Buses = response.Buses?.Where(b => Sees(registry, caller, b.NodeId)).ToList(),
                    Tools = response.Tools?.Where(t => Sees(registry, caller, t.NodeId)).ToList(),
                };
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, response);
            }
            case nameof(SnapshotRequest) when !caller.IsAdmin:
            {
                envelope.BodyAs<SnapshotRequest>();
                var snapshot = registry.Snapshot();
                snapshot = snapshot with
                {
                    Leases = snapshot.Leases.Where(l => Sees(registry, caller, l.NodeId)).ToList(),
                    Nodes = snapshot.Nodes.Where(n => Sees(registry, caller, n.NodeId)).ToList(),
                    Buses = snapshot.Buses.Where(b => Sees(registry, caller, b.NodeId)).ToList(),
                    Tools = snapshot.Tools.Where(t => Sees(registry, caller, t.NodeId)).ToList(),
                };
                return RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, snapshot);
            }
        }
        return handle(registry, envelope);
    }

    /// <summary>The tenant a node belongs to (its metadata), or null for an unknown node or one from before access control.</summary>
    public static string? TenantOfNode(RegistryState registry, string nodeId) =>
        registry.Nodes.Find(nodeId)?.Metadata?.GetValueOrDefault(TenantKey);

    /// <summary>Whether <paramref name="caller"/> may see what node <paramref name="nodeId"/> owns.</summary>
    private static bool Sees(RegistryState registry, AuthCaller caller, string nodeId) =>
        caller.IsAdmin || TenantOfNode(registry, nodeId) == caller.Tenant;

    private TenantQuotas? QuotaOf(string tenant) => _auth.Current.Quotas.GetValueOrDefault(tenant);

    /// <summary>A node id the caller may act as: its own tenant's, or (unless <paramref name="mustExist"/>) not yet anyone's.</summary>
    private static void RequireOwnNode(RegistryState registry, AuthCaller caller, string nodeId, bool mustExist)
    {
        var node = registry.Nodes.Find(nodeId);
        if (node is null)
        {
            if (mustExist)
                throw Reject.NotFound($"Node '{nodeId}' has not announced itself; with access control on, a node announces itself (NodeAnnouncement) before it leases ports.",
                    ("nodeId", nodeId));
            return;
        }
        if (caller.IsAdmin) return;
        var tenant = node.Metadata?.GetValueOrDefault(TenantKey);
        if (tenant != caller.Tenant)
            throw Denied(caller, $"Node '{nodeId}' is not in tenant '{caller.Tenant}'; a token acts only for its own tenant's nodes.",
                ("reason", "tenant"), ("nodeId", nodeId));
    }

    private static void CheckLease(RegistryState registry, AuthCaller caller, string leaseId, string nodeId)
    {
        // Another tenant's lease does not exist for this caller (its holder is not even named).
        if (registry.Leases.Leases.FirstOrDefault(l => l.LeaseId == leaseId) is { } lease && !Sees(registry, caller, lease.NodeId))
            throw Reject.Lease(ErrorCodes.LeaseNotFound, $"No live lease '{leaseId}'.", ("leaseId", leaseId));
        RequireOwnNode(registry, caller, nodeId, mustExist: false);
    }

    private RegistryEnvelope Announce(RegistryState registry, RegistryEnvelope envelope, AuthCaller caller)
    {
        var announcement = envelope.BodyAs<NodeAnnouncement>();
        var existing = registry.Nodes.Find(announcement.NodeId);
        RequireOwnNode(registry, caller, announcement.NodeId, mustExist: false);
        // An admin re-announcing a node keeps it in its tenant; a new node joins the caller's tenant.
        var tenant = existing?.Metadata?.GetValueOrDefault(TenantKey) ?? caller.Tenant;
        if (existing is null && QuotaOf(tenant)?.Nodes is { } limit)
        {
            var count = registry.Nodes.Nodes.Count(n => n.Metadata?.GetValueOrDefault(TenantKey) == tenant);
            if (count + 1 > limit)
                throw Quota(caller, "nodes", limit, $"Tenant '{tenant}' has {count} node(s), its quota.", ("held", count.ToString()));
        }
        var metadata = new Dictionary<string, string>(announcement.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            [TenantKey] = tenant,
        };
        return envelope with { Body = RegistryCodec.SerializeBody(announcement with { Metadata = metadata }) };
    }

    private void RegisterBus(RegistryState registry, AuthCaller caller, EventBusRegistration request)
    {
        RequireOwnNode(registry, caller, request.NodeId, mustExist: false);
        var tenant = TenantOfNode(registry, request.NodeId) ?? caller.Tenant;
        var existing = registry.Buses.Buses.FirstOrDefault(b => b.Name == request.Name);
        if (existing is not null && !caller.IsAdmin && TenantOfNode(registry, existing.NodeId) != tenant)
            throw Denied(caller, $"The bus name '{request.Name}' is taken in another tenant; bus names are unique across the registry.",
                ("reason", "nameTaken"), ("name", request.Name));
        if (existing is null && QuotaOf(tenant)?.Buses is { } limit)
        {
            var count = registry.Buses.Buses.Count(b => TenantOfNode(registry, b.NodeId) == tenant);
            if (count + 1 > limit)
                throw Quota(caller, "buses", limit, $"Tenant '{tenant}' has {count} bus(es), its quota.", ("held", count.ToString()));
        }
    }

    private void RegisterTool(RegistryState registry, AuthCaller caller, ToolContractRegistration request)
    {
        RequireOwnNode(registry, caller, request.NodeId, mustExist: false);
        var tenant = TenantOfNode(registry, request.NodeId) ?? caller.Tenant;
        var existing = registry.Tools.Tools.FirstOrDefault(t => t.Name == request.Name && t.Version == request.Version);
        if (existing is not null && !caller.IsAdmin && TenantOfNode(registry, existing.NodeId) != tenant)
            throw Denied(caller, $"The tool '{request.Name}@{request.Version}' is registered in another tenant; tool names and versions are unique across the registry.",
                ("reason", "nameTaken"), ("tool", $"{request.Name}@{request.Version}"));
        if (existing is not null) return; // idempotent re-registration (or a conflict the registry reports): nothing new is held
        var quotas = QuotaOf(tenant);
        var owned = registry.Tools.Tools.Where(t => TenantOfNode(registry, t.NodeId) == tenant).ToList();
        if (quotas?.Tools is { } limit && owned.Count + 1 > limit)
            throw Quota(caller, "tools", limit, $"Tenant '{tenant}' has {owned.Count} tool contract(s), its quota.", ("held", owned.Count.ToString()));
        if (quotas?.SchemaBytes is { } bytes)
        {
            static long SizeOf(string? a, string? b) => Encoding.UTF8.GetByteCount(a ?? "") + Encoding.UTF8.GetByteCount(b ?? "");
            var held = owned.Sum(t => SizeOf(t.InputSchema, t.OutputSchema));
            var adding = SizeOf(request.InputSchema, request.OutputSchema);
            if (held + adding > bytes)
                throw Quota(caller, "schemaBytes", bytes, $"Tenant '{tenant}' holds {held} bytes of tool schemas; {adding} more would exceed its quota of {bytes}.",
                    ("held", held.ToString()), ("requested", adding.ToString()));
        }
    }

    /// <summary>A token bucket per tenant: <paramref name="perSecond"/> requests a second, bursts up to one second's worth.</summary>
    private bool TakeRequest(string tenant, int perSecond)
    {
        var now = _time.GetTimestamp();
        var (tokens, at) = _buckets.TryGetValue(tenant, out var bucket) ? bucket : (perSecond, now);
        tokens = Math.Min(perSecond, tokens + _time.GetElapsedTime(at, now).TotalSeconds * perSecond);
        if (tokens < 1)
        {
            _buckets[tenant] = (tokens, now);
            return false;
        }
        _buckets[tenant] = (tokens - 1, now);
        return true;
    }

    private static AccessDeniedException Denied(AuthCaller caller, string message, params (string Key, string Value)[] details)
    {
        var all = new Dictionary<string, string> { ["tenant"] = caller.Tenant, ["role"] = caller.Role, ["tokenName"] = caller.TokenName };
        foreach (var (key, value) in details) all[key] = value;
        return new PermissionDeniedException(message, all);
    }

    private static AccessDeniedException Quota(AuthCaller caller, string quota, long limit, string message, params (string Key, string Value)[] details)
    {
        var all = new Dictionary<string, string> { ["tenant"] = caller.Tenant, ["quota"] = quota, ["limit"] = limit.ToString() };
        foreach (var (key, value) in details) all[key] = value;
        return new QuotaExceededException(message, all);
    }
}
