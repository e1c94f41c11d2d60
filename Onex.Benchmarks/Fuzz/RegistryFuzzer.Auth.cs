using NetMQ;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Server;

namespace Onex.Benchmarks.Fuzz;

/// <summary><see cref="FuzzMode.Auth"/>: requests with wrong, foreign and valid tokens, and what each must be answered.</summary>
internal sealed partial class RegistryFuzzer
{
    private const string OtherNode = "fz-other";
    private const string AuthClient = "fuzzer-auth";

    // The detail keys the catalogue (PROTOCOL.md section 11) lists for the codes the auth mode expects.
    private static readonly Dictionary<string, HashSet<string>> CatalogueDetails = new(StringComparer.Ordinal)
    {
        [ErrorCodes.Unauthenticated] = ["reason"],
        [ErrorCodes.PermissionDenied] = ["reason", "tenant", "role", "tokenName", "messageType", "required", "requestedTenant", "nodeId", "name", "tool"],
        [ErrorCodes.LeaseNotFound] = ["leaseId"],
        [ErrorCodes.Fenced] = ["leaseId", "fencingToken"],
        [ErrorCodes.NotOwner] = ["nodeId", "owner", "leaseId", "name", "tool"],
        [ErrorCodes.InvalidArgument] = ["field", "value", "min", "max", "allowed", "reason", "tenants"],
        [ErrorCodes.Malformed] = ["field", "missing", "trailingBytes", "reason"],
    };

    /// <summary>What one auth-mode request must be answered: <see cref="Code"/> "OK" for a success, null for any catalogue code.</summary>
    private sealed record AuthExpectation(string Description, string? Code, IReadOnlyDictionary<string, string> Details)
    {
        public Action<RegistryEnvelope>? OnSuccess { get; init; }
        public Action? OnError { get; init; }
    }

    /// <summary>
    /// A tenant's fixtures: its node's leases, another node's lease, leases granted by the run (released by it), and a
    /// node only this tenant has (<see cref="OnlyNode"/>; <c>fz-node</c>, <c>fz-other</c> and <c>fz.tool</c> are in both).
    /// </summary>
    private sealed record AuthFixture(FuzzTenant Tenant, IReadOnlyList<PortLease> Leases, PortLease OtherNodesLease, List<PortLease> Granted, string OnlyNode);

    private readonly Dictionary<string, AuthExpectation> _expected = new(StringComparer.Ordinal);
    private AuthFixture[] _fixtures = [];
    private readonly Dictionary<string, string> _acting = new(StringComparer.Ordinal);

    // The tenant the request of this reply acted in.
    private string? ActingTenant(NetMQMessage message)
    {
        var (requestId, _) = RegistryCodec.TryReadIds(message[message.FrameCount - 1].ToByteArray());
        return requestId is not null && _acting.Remove(requestId, out var tenant) ? tenant : null;
    }

    // Each tenant gets a node fz-node (the same name in both), fz-other, leases, a bus and a tool.
    private void PrepareAuth()
    {
        _fixtures = [PrepareTenant(_auth!.A), PrepareTenant(_auth.B)];
    }

    private AuthFixture PrepareTenant(FuzzTenant tenant)
    {
        Expect<NodeRecord>(Call(new NodeAnnouncement { NodeId = Node, HeartbeatIntervalMs = 600_000 }, tenant.Node));
        Expect<NodeRecord>(Call(new NodeAnnouncement { NodeId = OtherNode, HeartbeatIntervalMs = 600_000 }, tenant.Node));
        var only = $"fz-only-{tenant.Name}";
        Expect<NodeRecord>(Call(new NodeAnnouncement { NodeId = only, HeartbeatIntervalMs = 600_000 }, tenant.Node));
        var leases = Expect<PortGrant>(Call(new PortRequest { NodeId = Node, Count = 3, TtlMs = 3_600_000, Purpose = "fuzz" }, tenant.Node)).Leases;
        var other = Expect<PortGrant>(Call(new PortRequest { NodeId = OtherNode, Count = 1, TtlMs = 3_600_000, Purpose = "fuzz" }, tenant.Node)).Leases[0];
        Expect<EventBusRecord>(Call(new EventBusRegistration { Name = "fz-bus", Kind = "zmq", Endpoints = ["tcp://127.0.0.1:1"], NodeId = Node }, tenant.Node));
        Expect<ToolContractRecord>(Call(Tool(), tenant.Node));
        return new AuthFixture(tenant, leases, other, [], only);
    }

    private static ToolContractRegistration Tool() => new()
    {
        Name = "fz.tool", Version = "1.0.0", InputSchema = """{"type":"object","properties":{"n":{"type":"integer","minimum":1}},"required":["n"]}""",
        OutputSchema = """{"type":"object"}""", ErrorCodes = [new ToolErrorCode { Code = "BAD", Description = "bad" }], NodeId = Node,
    };

    private void SendAuthRequest()
    {
        var requestId = "fz" + Interlocked.Increment(ref _ids);
        var fixture = _fixtures[_random.Next(_fixtures.Length)];
        var foreign = _fixtures[fixture == _fixtures[0] ? 1 : 0];
        var (frame, expectation) = AuthRequest(requestId, fixture, foreign);
        _expected[requestId] = expectation;
        _acting[requestId] = fixture.Tenant.Name; // a success acts in this tenant (the refusals change nothing)
        Sent(frame);
        _dealer.SendFrame(frame);
    }

    // One request of a random template with a random credential, and what it must be answered.
    private (byte[] Frame, AuthExpectation Expectation) AuthRequest(string requestId, AuthFixture here, AuthFixture foreign)
    {
        var tenant = here.Tenant;
        var lease = here.Leases[_random.Next(here.Leases.Count)];
        var template = _random.Next(12);
        object body;
        var expected = "OK";
        var details = new Dictionary<string, string>(StringComparer.Ordinal);
        Action<RegistryEnvelope>? onSuccess = null;
        Action? onError = null;
        switch (template)
        {
            case 0:
                body = new PortRequest { NodeId = Node, Count = 1, TtlMs = 3_600_000, Purpose = "fuzz" };
                expected = null!; // PORT_EXHAUSTED is a fair answer once the pool is taken
                onSuccess = reply => here.Granted.AddRange(RegistryCodec.DecodeBody<PortGrant>(reply).Leases);
                break;
            case 1:
                body = new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = Node, FencingToken = lease.FencingToken };
                break;
            case 2: // a wrong fencing token
                body = new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = Node, FencingToken = lease.FencingToken + 1 + _random.Next(1000) };
                expected = ErrorCodes.Fenced;
                details["leaseId"] = lease.LeaseId;
                details["fencingToken"] = ((LeaseRenewal)body).FencingToken.ToString(System.Globalization.CultureInfo.InvariantCulture);
                break;
            case 3: // another peer's lease
                body = new LeaseRelease { LeaseId = here.OtherNodesLease.LeaseId, NodeId = Node, FencingToken = here.OtherNodesLease.FencingToken };
                expected = ErrorCodes.NotOwner;
                details["leaseId"] = here.OtherNodesLease.LeaseId;
                details["nodeId"] = Node;
                details["owner"] = OtherNode;
                break;
            case 4 when here.Granted.Count > 0: // release what the run was granted, so the pool does not run dry
                var index = _random.Next(here.Granted.Count);
                var granted = here.Granted[index];
                here.Granted.RemoveAt(index);
                body = new LeaseRelease { LeaseId = granted.LeaseId, NodeId = Node, FencingToken = granted.FencingToken };
                onError = () => here.Granted.Add(granted);
                break;
            case 4:
            case 5:
                body = new NodeAnnouncement
                {
                    NodeId = Node, HeartbeatIntervalMs = 600_000,
                    Metadata = new Dictionary<string, string> { ["round"] = _random.Next(3).ToString(System.Globalization.CultureInfo.InvariantCulture) },
                };
                break;
            case 6: // the node both tenants have, or the one only this tenant has
                body = new NodeHeartbeat { NodeId = _random.Next(3) == 0 ? here.OnlyNode : Node };
                break;
            case 7:
                body = new EventBusRegistration { Name = "fz-bus", Kind = "zmq", Endpoints = [$"tcp://127.0.0.1:{1 + _random.Next(2)}"], NodeId = Node };
                break;
            case 8:
                body = Tool();
                break;
            case 9:
                body = new SnapshotRequest();
                break;
            case 10:
                body = new IntrospectionRequest { Include = ["leases", "nodes"], NodeId = Node };
                break;
            default:
                body = new ValidatePayload { ToolName = "fz.tool", Direction = "input", Payload = """{"n":5}""" };
                break;
        }
        var type = MessageTypes.NameOf(body.GetType());
        var write = RequestDispatcher.IsWrite(type);
        var onLease = body is LeaseRenewal or LeaseRelease;
        string? token;
        string? named = null;
        string who;
        switch (_random.Next(12))
        {
            case 0:
                token = null;
                named = _random.Next(2) == 0 ? tenant.Name : null;
                who = "no token";
                (expected, details) = (ErrorCodes.Unauthenticated, new() { ["reason"] = "missing" });
                break;
            case 1:
                token = _random.Next(2) == 0 ? UnknownToken() : Altered(tenant.Node);
                who = "an unknown token";
                (expected, details) = (ErrorCodes.Unauthenticated, new() { ["reason"] = "unknown" });
                break;
            case 2: // another tenant's token naming this tenant
            {
                var role = _random.Next(2) == 0 ? AuthRoles.Reader : AuthRoles.Node;
                (token, var name) = foreign.Tenant.Of(role);
                named = tenant.Name;
                who = $"tenant {foreign.Tenant.Name}'s {role} token naming tenant {tenant.Name}";
                var byRole = role == AuthRoles.Reader && write; // the role is checked before the tenant
                (expected, details) = (ErrorCodes.PermissionDenied, new()
                {
                    ["reason"] = byRole ? "role" : "tenant", ["tenant"] = foreign.Tenant.Name, ["role"] = role, ["tokenName"] = name,
                });
                details[byRole ? "messageType" : "requestedTenant"] = byRole ? type : tenant.Name;
                break;
            }
            case 3 when onLease: // another tenant's node token on this tenant's lease: it does not exist there
                token = foreign.Tenant.Node;
                who = $"tenant {foreign.Tenant.Name}'s node token on tenant {tenant.Name}'s lease";
                var leaseId = body is LeaseRenewal renewal ? renewal.LeaseId : ((LeaseRelease)body).LeaseId;
                (expected, details) = (ErrorCodes.LeaseNotFound, new() { ["leaseId"] = leaseId });
                onSuccess = null;
                break;
            case 3:
            case 4:
                (token, var readerName) = tenant.Of(AuthRoles.Reader);
                who = $"tenant {tenant.Name}'s reader token";
                if (write)
                {
                    (expected, details) = (ErrorCodes.PermissionDenied, new()
                    {
                        ["reason"] = "role", ["tenant"] = tenant.Name, ["role"] = AuthRoles.Reader, ["tokenName"] = readerName,
                        ["messageType"] = type, ["required"] = AuthRoles.Node,
                    });
                }
                break;
            case 5: // an admin of the other tenant, naming this one
                token = foreign.Tenant.Admin;
                named = tenant.Name;
                who = $"tenant {foreign.Tenant.Name}'s admin token naming tenant {tenant.Name}";
                break;
            case 6: // an admin (of either tenant) naming no tenant: it acts in the one tenant holding the name (PROTOCOL.md 16.3)
                (token, var adminName) = (_random.Next(2) == 0 ? tenant : foreign.Tenant).Of(AuthRoles.Admin);
                who = $"admin token {adminName} naming no tenant";
                if (AmbiguousName(body) is { } ambiguous)
                {
                    // Both tenants hold it: INVALID_ARGUMENT, reason ambiguous, the tenants in order.
                    (expected, details) = (ErrorCodes.InvalidArgument, new()
                    {
                        ["field"] = "tenant", ["reason"] = "ambiguous",
                        ["tenants"] = string.Join(",", new[] { _auth!.A.Name, _auth.B.Name }.Order(StringComparer.Ordinal)),
                    });
                    who += $" on {ambiguous}, which both tenants hold";
                }
                break;
            default:
                token = tenant.Node;
                named = _random.Next(4) == 0 ? tenant.Name : null;
                who = $"tenant {tenant.Name}'s node token";
                break;
        }
        var frame = Encode(requestId, body, token, named);
        // One in eight carries a body that breaks the contract: the token, its role and a named tenant are checked
        // before the body is read (PROTOCOL.md 16.1), so those refusals stand and everything else is MALFORMED.
        if (_random.Next(8) == 0)
        {
            var (broken, field, fault) = BreakBody(frame);
            frame = EncodeRaw(requestId, type, broken, token, named);
            who += $" and {fault}";
            if (expected is not (ErrorCodes.Unauthenticated or ErrorCodes.PermissionDenied))
                (expected, details) = (ErrorCodes.Malformed, new() { ["field"] = field });
        }
        // A success of a write moves the fixtures on; any error leaves them (a failed release keeps its lease).
        if (expected is not ("OK" or null) || !write) onSuccess = null;
        return (frame, new AuthExpectation($"{type} with {who}{(named is null ? "" : $" (tenant {named})")}", expected, details)
        {
            OnSuccess = onSuccess, OnError = onError,
        });
    }

    // The name a request resolves its tenant by when both tenants hold it (fz-node, fz.tool), else null: leases are
    // unique, fz-only-* is in one tenant, and reads without a tenant see every tenant.
    private static string? AmbiguousName(object body) => body switch
    {
        PortRequest { NodeId: Node } or NodeAnnouncement { NodeId: Node } or NodeHeartbeat { NodeId: Node }
            or EventBusRegistration { NodeId: Node } or ToolContractRegistration { NodeId: Node } => $"node {Node}",
        ValidatePayload { ToolName: "fz.tool" } => "tool fz.tool",
        _ => null,
    };

    // The body of an encoded request with one contract fault: a field of the wrong type, a nil body, or a body that is
    // not a map. Returns the body's bytes, the field MALFORMED must name, and what was done.
    private (byte[] Body, string Field, string Fault) BreakBody(byte[] frame)
    {
        var body = MessagePack.MessagePackSerializer.Deserialize<Dictionary<string, object?>>(RegistryCodec.Decode(frame).Body);
        var keys = body.Where(kv => kv.Value is not null).Select(kv => kv.Key).ToList();
        var fault = keys.Count == 0 ? 1 + _random.Next(2) : _random.Next(3);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePack.MessagePackWriter(buffer);
        string field, what;
        switch (fault)
        {
            case 0:
                var key = keys[_random.Next(keys.Count)];
                w.WriteMapHeader(body.Count);
                foreach (var (name, value) in body)
                {
                    w.Write(name);
                    if (name != key) MessagePack.MessagePackSerializer.Serialize(ref w, value);
                    else if (value is string) w.Write(7);
                    else w.Write("text");
                }
                (field, what) = ("body." + key, $"'{key}' of the wrong type");
                break;
            case 1:
                w.WriteNil();
                (field, what) = ("body", "a nil body");
                break;
            default:
                w.WriteArrayHeader(1);
                w.Write(1);
                (field, what) = ("body", "a body that is not a map");
                break;
        }
        w.Flush();
        return (buffer.WrittenSpan.ToArray(), field, what);
    }

    // An envelope around body bytes as they are (RegistryCodec.Encode serializes a typed body).
    private static byte[] EncodeRaw(string requestId, string messageType, byte[] body, string? token, string? tenant)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePack.MessagePackWriter(buffer);
        w.WriteMapHeader(5 + (token is null ? 0 : 1) + (tenant is null ? 0 : 1));
        if (token is not null)
        {
            w.Write("token");
            w.Write(token);
        }
        if (tenant is not null)
        {
            w.Write("tenant");
            w.Write(tenant);
        }
        w.Write("protocolVersion");
        w.Write(ProtocolVersion.Current);
        w.Write("messageType");
        w.Write(messageType);
        w.Write("requestId");
        w.Write(requestId);
        w.Write("clientId");
        w.Write(AuthClient);
        w.Write("body");
        w.WriteRaw(body);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    // RegistryCodec.Encode with the body's own type (the envelope's messageType comes from it).
    private static byte[] Encode(string requestId, object body, string? token, string? tenant) => body switch
    {
        PortRequest b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        LeaseRenewal b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        LeaseRelease b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        NodeAnnouncement b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        NodeHeartbeat b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        EventBusRegistration b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        ToolContractRegistration b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        SnapshotRequest b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        IntrospectionRequest b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        ValidatePayload b => RegistryCodec.Encode(requestId, AuthClient, b, token: token, tenant: tenant),
        _ => throw new ArgumentException($"no request template sends {body.GetType().Name}", nameof(body)),
    };

    private string UnknownToken()
    {
        var bytes = new byte[32];
        _random.NextBytes(bytes);
        return AccessTokens.Prefix + Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    // A known token with one character changed.
    private string Altered(string token)
    {
        var chars = token.ToCharArray();
        var at = AccessTokens.Prefix.Length + _random.Next(chars.Length - AccessTokens.Prefix.Length);
        chars[at] = chars[at] == 'A' ? 'B' : 'A';
        return new string(chars);
    }

    // The reply against what its request's credential must get: the code, the details the catalogue promises, and
    // never a token in the reply.
    private bool CheckAuthReply(NetMQMessage message)
    {
        var frame = message[message.FrameCount - 1].ToByteArray();
        foreach (var token in _auth!.Tokens)
            if (frame.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(token)) >= 0) return Problem("a reply carries a token");
        var reply = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
        if (!_expected.Remove(reply.RequestId, out var expectation)) return Problem($"a reply to request id '{reply.RequestId}' the fuzzer did not send");
        var code = reply.MessageType == nameof(Error) ? RegistryCodec.DecodeBody<Error>(reply).Code : "OK";
        if (code == "OK") expectation.OnSuccess?.Invoke(reply);
        else expectation.OnError?.Invoke();
        if (expectation.Code is null) return true;
        if (code != expectation.Code)
            return Problem($"seed {_seed}, {reply.RequestId}: {expectation.Description} was answered {code}, expected {expectation.Code}"
                           + (code == "OK" ? "" : $" ({RegistryCodec.DecodeBody<Error>(reply).Message})"));
        if (code == "OK") return true;
        var details = RegistryCodec.DecodeBody<Error>(reply).Details;
        foreach (var (key, value) in expectation.Details)
        {
            if (!details.TryGetValue(key, out var actual) || actual != value)
                return Problem($"seed {_seed}, {reply.RequestId}: {expectation.Description}: {code} details.{key} = '{actual}', expected '{value}'");
        }
        if (CatalogueDetails.TryGetValue(code, out var listed) && details.Keys.FirstOrDefault(k => !listed.Contains(k)) is { } extra)
            return Problem($"seed {_seed}, {reply.RequestId}: {expectation.Description}: {code} details.{extra} is not a key the catalogue lists");
        return true;
    }
}
