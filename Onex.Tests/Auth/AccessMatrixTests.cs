using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.Tests.Registry;

namespace Onex.Tests.Auth;

/// <summary>
/// Every request type against every kind of caller of a registry with an auth file: the outcome each one gets, and
/// the registry's state unchanged (as an admin's snapshot sees it) after every refusal.
/// </summary>
public class AccessMatrixTests
{
    public enum Caller { NoToken, UnknownToken, OtherTenantsNode, Reader, Node, Admin }

    private const string Ok = "ok";
    private const string Schema = """{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}""";

    /// <summary>Tenant a's world, made by a's node token before the row runs.</summary>
    private sealed record World(PortLease First, PortLease Second);

    // In the order a row sends them: what destroys a's world (conflict, release, deregistration, departure) comes last.
    private static readonly (string Type, Func<World, object> Body)[] Requests =
    [
        (nameof(PortRequest), _ => new PortRequest { NodeId = "a-node", Count = 1 }),
        (nameof(LeaseRenewal), w => new LeaseRenewal { LeaseId = w.First.LeaseId, NodeId = "a-node", FencingToken = w.First.FencingToken }),
        (nameof(NodeAnnouncement), _ => new NodeAnnouncement { NodeId = "a-node", Name = "a node" }),
        (nameof(NodeHeartbeat), _ => new NodeHeartbeat { NodeId = "a-node" }),
        (nameof(EventBusRegistration), _ => new EventBusRegistration { Name = "a-bus", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = "a-node" }),
        (nameof(ToolContractRegistration), _ => Tool("2.0.0")),
        (nameof(ValidatePayload), _ => new ValidatePayload { ToolName = "a.tool", Version = "1.0.0", Payload = """{"id":"x"}""" }),
        (nameof(IntrospectionRequest), _ => new IntrospectionRequest()),
        (nameof(SnapshotRequest), _ => new SnapshotRequest()),
        // No credit: the stream sends nothing, so later rows' replies are the next frames this dealer reads.
        (nameof(Watch), _ => new Watch { Credit = 0 }),
        (nameof(WatchCredit), _ => new WatchCredit { WatchId = "no-such-watch", Credit = 1 }),
        (nameof(WatchCancel), _ => new WatchCancel { WatchId = "no-such-watch" }),
        (nameof(PortConflict), w => new PortConflict { LeaseId = w.First.LeaseId, NodeId = "a-node", FencingToken = w.First.FencingToken, Reason = "bind failed" }),
        (nameof(LeaseRelease), w => new LeaseRelease { LeaseId = w.Second.LeaseId, NodeId = "a-node", FencingToken = w.Second.FencingToken }),
        (nameof(EventBusDeregistration), _ => new EventBusDeregistration { Name = "a-bus", NodeId = "a-node" }),
        (nameof(NodeDeparture), _ => new NodeDeparture { NodeId = "a-node" }),
    ];

    private static readonly HashSet<string> Reads = [nameof(ValidatePayload), nameof(IntrospectionRequest), nameof(SnapshotRequest)];

    private static string Expected(Caller caller, string type) => caller switch
    {
        Caller.NoToken or Caller.UnknownToken => ErrorCodes.Unauthenticated,
        _ when type == nameof(WatchCredit) => ErrorCodes.NotFound, // every role may watch; this watch was never opened
        _ when type is nameof(Watch) or nameof(WatchCancel) => Ok,
        Caller.Reader => Reads.Contains(type) ? Ok : ErrorCodes.PermissionDenied,
        Caller.Node or Caller.Admin => Ok,
        // Another tenant's node token: names are per tenant, so "a-node", "a-bus" and "a.tool" name b's own namesakes
        // (created by the row as it goes); a's leases are not there for it, nor is a's tool version 1.0.0.
        _ => type switch
        {
            nameof(LeaseRenewal) or nameof(PortConflict) or nameof(LeaseRelease) => ErrorCodes.LeaseNotFound,
            nameof(PortRequest) or nameof(ValidatePayload) => ErrorCodes.NotFound,
            _ => Ok,
        },
    };

    private static ToolContractRegistration Tool(string version) =>
        new() { Name = "a.tool", Version = version, InputSchema = Schema, OutputSchema = Schema, NodeId = "a-node" };

    [Test]
    public async Task Every_request_type_gets_the_expected_answer_for_every_caller_and_refusals_change_nothing(
        [Values] Caller caller)
    {
        using var files = new AuthTestFiles();
        // A clock that never moves: no lease expires and no node turns unhealthy while the matrix runs (on a loaded
        // machine it takes longer than a node's three missed heartbeats), so only the requests can change the state.
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000));
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path }, time);
        using var owner = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        using var admin = new TestDealer(host.RouterEndpoint) { Token = files.Admin };
        using var adminInA = new TestDealer(host.RouterEndpoint) { Token = files.Admin, Tenant = "a" };
        owner.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "a-node" });
        var grant = owner.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "a-node", Count = 2 });
        owner.Call<EventBusRegistration, EventBusRecord>(new EventBusRegistration { Name = "a-bus", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:2"], NodeId = "a-node" });
        owner.Call<ToolContractRegistration, ToolContractRecord>(Tool("1.0.0"));
        var world = new World(grant.Leases[0], grant.Leases[1]);

        using var dealer = new TestDealer(host.RouterEndpoint)
        {
            Token = caller switch
            {
                Caller.NoToken => null,
                Caller.UnknownToken => AccessTokens.Generate(),
                Caller.OtherTenantsNode => files.NodeB,
                Caller.Reader => files.ReaderA,
                Caller.Node => files.NodeA,
                _ => files.Admin,
            },
        };
        Assert.Multiple(() =>
        {
            foreach (var (type, body) in Requests)
            {
                var before = admin.StateBytes();
                var beforeOfA = StateOfA(adminInA);
                var reply = SendAs(dealer, type, body(world));
                var expected = Expected(caller, type);
                var got = reply.MessageType == nameof(Error) ? reply.BodyAs<Error>().Code : Ok;
                var message = reply.MessageType == nameof(Error) ? reply.BodyAs<Error>().Message : "";
                Assert.That(got, Is.EqualTo(expected), $"{caller} sending {type}: {message}");
                if (got != Ok)
                    Assert.That(admin.StateBytes(), Is.EqualTo(before), $"{caller} sending {type} was refused ({got}) but the state changed");
                if (caller == Caller.OtherTenantsNode)
                    Assert.That(StateOfA(adminInA), Is.EqualTo(beforeOfA), $"tenant b sending {type} changed tenant a's entries");
                if (reply.MessageType == nameof(Error) && got == ErrorCodes.PermissionDenied)
                    Assert.That(reply.BodyAs<Error>().Details.ContainsKey("reason"), Is.True, $"{caller} {type}: PERMISSION_DENIED names no reason");
                if (got == Ok && type == nameof(SnapshotRequest))
                {
                    var snapshot = reply.BodyAs<RegistrySnapshot>();
                    var seesA = snapshot.Nodes.Any(n => n.NodeId == "a-node" && n.Tenant == "a");
                    Assert.That(seesA, Is.EqualTo(caller != Caller.OtherTenantsNode), $"{caller}: whether the snapshot shows tenant a's node");
                    if (caller == Caller.OtherTenantsNode)
                    {
                        Assert.That(snapshot.Leases.Select(l => l.Tenant).Concat(snapshot.Nodes.Select(n => n.Tenant)).Concat(snapshot.Buses.Select(b => b.Tenant))
                            .Concat(snapshot.Tools.Select(t => t.Tenant)), Is.All.EqualTo("b"), "another tenant sees a's leases, nodes, buses or tools");
                    }
                    if (caller == Caller.Admin)
                    {
                        var node = snapshot.Nodes.Single(n => n.NodeId == "a-node");
                        Assert.That(node.Tenant, Is.EqualTo("a"), "an admin sees the node's tenant");
                        Assert.That(node.Metadata![AuthGate.TenantKey], Is.EqualTo("a"), "the node's metadata names its tenant");
                    }
                }
            }
        });
    }

    /// <summary>Tenant a's entries as an admin acting in a sees them (the sequence and time left out: other tenants move them).</summary>
    private static byte[] StateOfA(TestDealer adminInA)
    {
        var snapshot = adminInA.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        return RegistryCodec.SerializeBody(snapshot with { TakenAt = 0, Sequence = 0 });
    }

    private static RegistryEnvelope SendAs(TestDealer dealer, string type, object body) => body switch
    {
        PortRequest b => dealer.Request(b),
        LeaseRenewal b => dealer.Request(b),
        LeaseRelease b => dealer.Request(b),
        PortConflict b => dealer.Request(b),
        NodeAnnouncement b => dealer.Request(b),
        NodeHeartbeat b => dealer.Request(b),
        NodeDeparture b => dealer.Request(b),
        EventBusRegistration b => dealer.Request(b),
        EventBusDeregistration b => dealer.Request(b),
        ToolContractRegistration b => dealer.Request(b),
        ValidatePayload b => dealer.Request(b),
        IntrospectionRequest b => dealer.Request(b),
        SnapshotRequest b => dealer.Request(b),
        Watch b => dealer.Request(b),
        WatchCredit b => dealer.Request(b),
        WatchCancel b => dealer.Request(b),
        _ => throw new ArgumentException($"no sender for {type}"),
    };

    [Test]
    public void The_matrix_covers_every_request_type_the_registry_answers() =>
        Assert.That(Requests.Select(r => r.Type), Is.EquivalentTo(Onex.RegistryNode.Server.RequestDispatcher.RequestTypes));
}
