using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Contracts;

/// <summary>One realistic instance of every contract type, as the registry or a client would build it.</summary>
internal static class SampleMessages
{
    private const long T0 = 1767225600000; // 2026-01-01T00:00:00Z
    private const string Epoch = "01JGZ3Q8W5K2M7N4P6R9T0V1XA";

    /// <summary>Types that appear only nested inside messages but have their own schema file.</summary>
    public static readonly Type[] NestedTypes = [typeof(ToolErrorCode), typeof(ValidationIssue), typeof(RegistryStats), typeof(RegistryEntity), typeof(ClusterStatus), typeof(ClusterHostStatus)];

    public static readonly PortLease Lease = new()
    {
        LeaseId = "lease-0193f5a2c7e8", Port = 21003, Host = "127.0.0.1", NodeId = "billing-worker-1", Protocol = PortProtocols.Tcp,
        TtlMs = 30000, GrantedAt = T0, ExpiresAt = T0 + 30000, FencingToken = 17, Purpose = null,
    };

    public static readonly NodeRecord Node = new()
    {
        NodeId = "billing-worker-1", Name = "billing worker", Host = "build-agent-3", ProcessId = 48213, HeartbeatIntervalMs = 5000,
        Health = Health.Unhealthy, RegisteredAt = T0 - 60000, LastSeenAt = T0 - 16000, Metadata = null,
    };

    public static readonly EventBusRecord Bus = new()
    {
        Name = "billing-events", Kind = BusKinds.JetStream, Endpoints = ["nats://127.0.0.1:4222"], NodeId = "billing-worker-1",
        RegisteredAt = T0 - 50000, Metadata = new Dictionary<string, string> { ["stream"] = "BILLING" },
    };

    public static readonly ToolErrorCode ErrorCode = new() { Code = "CARD_DECLINED", Description = "The card issuer refused the charge." };

    public static readonly ToolContractRegistration ToolRegistration = new()
    {
        Name = "billing.refund", Version = "2.0.0-rc.1", Description = "Refunds a settled charge.",
        InputSchema = """{ "type": "object", "properties": { "chargeId": { "type": "string" } }, "required": ["chargeId"] }""",
        OutputSchema = """{"type":"object","properties":{"refundId":{"type":"string"}}}""",
        ErrorCodes = [ErrorCode, new ToolErrorCode { Code = "ALREADY_REFUNDED" }], NodeId = "billing-worker-1",
    };

    public static readonly ToolContractRecord Tool = new()
    {
        Name = ToolRegistration.Name, Version = ToolRegistration.Version, Description = ToolRegistration.Description,
        InputSchema = ToolRegistration.InputSchema, OutputSchema = ToolRegistration.OutputSchema, ErrorCodes = ToolRegistration.ErrorCodes,
        NodeId = ToolRegistration.NodeId, Fingerprint = ContractFingerprint.Of(ToolRegistration), RegisteredAt = T0 - 40000,
    };

    public static readonly ValidationIssue Issue = new() { Path = "#/chargeId", Kind = "PropertyRequired", Message = "PropertyRequired: #/chargeId" };

    public static readonly RegistryStats Stats = new()
    {
        StartedAt = T0 - 3600000, UptimeMs = 3600000, RequestsServed = 15230,
        ErrorsByCode = new Dictionary<string, long> { [ErrorCodes.Fenced] = 2 }, LeaseCount = 1, NodeCount = 1, BusCount = 1,
        ToolCount = 1, FreePorts = 9998, QuarantinedPorts = 1,
    };

    public static readonly RegistryEntity Entity = new() { Tool = Tool };

    public static readonly ClusterHostStatus ClusterHost = new() { Host = "host-b", Health = Health.Unhealthy, HeartbeatAgeMs = 3600 };

    public static readonly ClusterStatus Cluster = new() { Host = "host-a", Connected = true, Stale = false, Hosts = [ClusterHost] };

    /// <summary>A sample for every type in <see cref="MessageTypes.All"/> and every nested type.</summary>
    public static readonly IReadOnlyDictionary<Type, object> ByType = new Dictionary<Type, object>
    {
        [typeof(PortRequest)] = new PortRequest
        {
            NodeId = "billing-worker-1", Count = 3, TtlMs = 60000, PreferredPort = 21003, Protocol = PortProtocols.Both, Purpose = "Integration_suite",
        },
        [typeof(PortGrant)] = new PortGrant { Leases = [Lease, Lease with { LeaseId = "lease-0193f5a2c7e9", Port = 21004, FencingToken = 18 }] },
        [typeof(PortLease)] = Lease with { Purpose = "grpc listener" },
        [typeof(LeaseRenewal)] = new LeaseRenewal { LeaseId = Lease.LeaseId, NodeId = Lease.NodeId, FencingToken = 17 },
        [typeof(LeaseRelease)] = new LeaseRelease { LeaseId = Lease.LeaseId, NodeId = Lease.NodeId, FencingToken = 17 },
        [typeof(PortConflict)] = new PortConflict { LeaseId = Lease.LeaseId, NodeId = Lease.NodeId, FencingToken = 17, Reason = null },
        [typeof(NodeAnnouncement)] = new NodeAnnouncement
        {
            NodeId = "billing-worker-1", Name = "billing worker", Host = "build-agent-3", ProcessId = 48213, HeartbeatIntervalMs = 2000,
            Metadata = new Dictionary<string, string> { ["team"] = "payments" },
        },
        [typeof(NodeHeartbeat)] = new NodeHeartbeat { NodeId = "billing-worker-1" },
        [typeof(NodeDeparture)] = new NodeDeparture { NodeId = "billing-worker-1" },
        [typeof(NodeRecord)] = Node,
        [typeof(EventBusRegistration)] = new EventBusRegistration
        {
            Name = "billing-events", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:21003", "ipc:///tmp/billing-events"], NodeId = "billing-worker-1",
        },
        [typeof(EventBusDeregistration)] = new EventBusDeregistration { Name = "billing-events", NodeId = "billing-worker-1" },
        [typeof(EventBusRecord)] = Bus,
        [typeof(ToolContractRegistration)] = ToolRegistration,
        [typeof(ToolContractRecord)] = Tool,
        [typeof(ValidatePayload)] = new ValidatePayload
        {
            ToolName = "billing.refund", Version = null, Direction = PayloadDirections.Output, Payload = """{"refundId":"rf-1"}""",
        },
        [typeof(ValidationResult)] = new ValidationResult
        {
            Valid = false, ToolName = Tool.Name, Version = Tool.Version, Fingerprint = Tool.Fingerprint, Errors = [Issue],
        },
        [typeof(IntrospectionRequest)] = new IntrospectionRequest
        {
            Include = [IntrospectionSections.Buses, IntrospectionSections.Stats], NodeId = null, Kind = BusKinds.JetStream, NamePrefix = "billing",
            Scope = IntrospectionScopes.Local,
        },
        [typeof(IntrospectionResponse)] = new IntrospectionResponse
        {
            Epoch = Epoch, Sequence = 42, Buses = [Bus with { RegistryHost = "host-b" }], Stats = Stats, Cluster = Cluster,
        },
        [typeof(SnapshotRequest)] = new SnapshotRequest(),
        [typeof(RegistrySnapshot)] = new RegistrySnapshot
        {
            Epoch = Epoch, Sequence = 42, TakenAt = T0 + 5000, Leases = [Lease], Nodes = [Node], Buses = [Bus], Tools = [Tool],
        },
        [typeof(RegistryChange)] = new RegistryChange
        {
            Epoch = Epoch, Sequence = 43, ChangeType = ChangeTypes.NodeUnhealthy, Key = Node.NodeId, Timestamp = T0 + 6000,
            NewValue = new RegistryEntity { Node = Node }, OldValue = new RegistryEntity { Node = Node with { Health = Health.Healthy } },
        },
        [typeof(RegistryHeartbeat)] = new RegistryHeartbeat { Epoch = Epoch, Sequence = 43, Timestamp = T0 + 7000, IntervalMs = 1000, Stopping = true },
        [typeof(Ack)] = new Ack(),
        [typeof(Watch)] = new Watch { Prefix = "registry.bus.", StartSequence = 40, Epoch = Epoch, Credit = 256 },
        [typeof(WatchCredit)] = new WatchCredit { WatchId = "r-000201", Credit = 128 },
        [typeof(WatchCancel)] = new WatchCancel { WatchId = "r-000201" },
        [typeof(WatchEvent)] = new WatchEvent
        {
            WatchId = "r-000201", Kind = WatchEventKinds.Change, Epoch = Epoch, Previous = 40, Sequence = 43,
            Change = new RegistryChange
            {
                Epoch = Epoch, Sequence = 43, ChangeType = ChangeTypes.NodeUnhealthy, Key = Node.NodeId, Timestamp = T0 + 6000,
                NewValue = new RegistryEntity { Node = Node },
            },
        },
        [typeof(Error)] = new Error
        {
            Code = ErrorCodes.PortExhausted, Message = "No free port for 3 leases (2 free).",
            Details = new Dictionary<string, string> { ["requested"] = "3", ["free"] = "2" },
        },
        [typeof(ToolErrorCode)] = ErrorCode,
        [typeof(ValidationIssue)] = Issue,
        [typeof(RegistryStats)] = Stats,
        [typeof(RegistryEntity)] = Entity,
        [typeof(ClusterStatus)] = Cluster,
        [typeof(ClusterHostStatus)] = ClusterHost,
    };
}
