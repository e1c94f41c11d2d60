using CsCheck;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Tenants;
using Onex.RegistryNode.Tools;
using Onex.Tests.Registry;

namespace Onex.Tests.Auth;

/// <summary>
/// The per-tenant counters behind the quota checks (leases, nodes, buses, tools, schema bytes) are kept as the state
/// changes, not recounted per request: after any sequence of operations they must equal a recount of the entries.
/// </summary>
public class TenantCounterPropertyTests
{
    private static readonly string[] Tenants = [TenantNames.Default, "a", "b"];
    private static readonly string[] NodeIds = ["n1", "n2"];
    private static readonly string[] Schemas = ["""{"type":"object"}""", """{"type":"object","properties":{"id":{"type":"string"}}}"""];

    /// <summary>One operation: what, in which tenant, on which node, and two small numbers to pick names and amounts.</summary>
    private sealed record Op(int Kind, int Tenant, int Node, int X, int Y)
    {
        public override string ToString() => $"{Kind}:{Tenants[Tenant]}/{NodeIds[Node]}/{X}/{Y}";
    }

    private static readonly Gen<Op> AnOp =
        Gen.Select(Gen.Int[0, 8], Gen.Int[0, Tenants.Length - 1], Gen.Int[0, NodeIds.Length - 1], Gen.Int[0, 2], Gen.Int[0, 2])
            .Select((kind, tenant, node, x, y) => new Op(kind, tenant, node, x, y));

    [Test]
    public void Per_tenant_counters_equal_a_recount_after_any_sequence_of_operations()
    {
        AnOp.Array[1, 60].Sample(ops =>
        {
            using var harness = new RegistryHarness(RegistryNodeOptions.Default, pool: Enumerable.Range(20000, 12));
            var registry = harness.Registry;
            foreach (var op in ops)
            {
                var tenant = Tenants[op.Tenant];
                var nodeId = NodeIds[op.Node];
                try
                {
                    harness.Do(r => r.InTenant<object>(tenant, () => op.Kind switch
                    {
                        0 => r.Handle(new NodeAnnouncement { NodeId = nodeId, HeartbeatIntervalMs = 1000 }),
                        1 => r.Handle(new NodeDeparture { NodeId = nodeId }),
                        2 => r.Handle(new PortRequest { NodeId = nodeId, Count = op.X + 1, TtlMs = 1000 + op.Y * 4000 }),
                        3 => r.Leases.Leases.Skip(op.X).FirstOrDefault() is { } lease
                            ? r.Handle(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken })
                            : new Ack(),
                        4 => r.Handle(new EventBusRegistration { Name = $"bus-{op.X}", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = nodeId }),
                        5 => r.Handle(new EventBusDeregistration { Name = $"bus-{op.X}", NodeId = nodeId }),
                        6 => r.Handle(new ToolContractRegistration
                        {
                            Name = "tool", Version = $"1.{op.X}.0", InputSchema = Schemas[op.Y % 2], OutputSchema = Schemas[0], NodeId = nodeId,
                        }),
                        7 => r.Handle(new NodeHeartbeat { NodeId = nodeId }),
                        // Time passes: leases expire, silent nodes turn unhealthy and are removed with what they own.
                        _ => Advance(harness, TimeSpan.FromSeconds(2 + op.X * 20)),
                    }));
                }
                catch (OnexException)
                {
                    // Refusals (unknown node, not the owner, conflicts, exhausted pool) are part of the sequence too.
                }
                AssertCountersMatch(registry, op);
            }
        }, seed: "av4FuVeLz-91", iter: 200, threads: 1);
    }

    private static Ack Advance(RegistryHarness harness, TimeSpan by)
    {
        harness.Time.Advance(by);
        return new Ack();
    }

    private static void AssertCountersMatch(Onex.RegistryNode.Server.RegistryState registry, Op after)
    {
        foreach (var tenant in Tenants)
        {
            bool In(string? t) => TenantNames.Of(t) == tenant;
            var tools = registry.Tools.Tools.Where(t => In(t.Tenant)).ToList();
            var expected = (
                Leases: registry.Leases.Leases.LongCount(l => In(l.Tenant)),
                Nodes: registry.Nodes.Nodes.LongCount(n => In(n.Tenant)),
                Buses: registry.Buses.Buses.LongCount(b => In(b.Tenant)),
                Tools: (long)tools.Count,
                SchemaBytes: tools.Sum(t => ToolCatalog.SchemaBytesOf(t.InputSchema, t.OutputSchema)));
            var counted = (
                Leases: registry.Leases.PerTenant.Of(tenant),
                Nodes: registry.Nodes.PerTenant.Of(tenant),
                Buses: registry.Buses.PerTenant.Of(tenant),
                Tools: registry.Tools.PerTenant.Of(tenant),
                SchemaBytes: registry.Tools.SchemaBytesPerTenant.Of(tenant));
            if (counted != expected)
                throw new AssertionException($"after {after}, tenant {tenant}: counters {counted} but a recount gives {expected}");
        }
    }
}
