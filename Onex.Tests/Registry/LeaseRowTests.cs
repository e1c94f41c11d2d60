using MessagePack;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>The compact stored form of a lease (store format 2) and the format-1 rows a store may still hold.</summary>
public class LeaseRowTests
{
    private static PortLease Lease(string? purpose = "web", string? tenant = null) => new()
    {
        LeaseId = "lease-42",
        Port = 20_001,
        Host = "127.0.0.1",
        NodeId = "node-a",
        Protocol = PortProtocols.Tcp,
        TtlMs = 30_000,
        GrantedAt = 1_700_000_000_000,
        ExpiresAt = 1_700_000_030_000,
        FencingToken = 9_007_199_254_740_993,
        Purpose = purpose,
        Tenant = tenant,
    };

    [TestCase("web", null)]
    [TestCase(null, null)]
    [TestCase("web", "team-b")]
    public void A_lease_reads_back_equal(string? purpose, string? tenant)
    {
        var lease = Lease(purpose, tenant);

        Assert.That(LeaseRow.Decode(LeaseRow.Encode(lease)), Is.EqualTo(lease));
    }

    [Test]
    public void A_format_1_row_in_the_wire_form_is_still_read()
    {
        var lease = Lease();

        Assert.That(LeaseRow.Decode(RegistryCodec.SerializeBody(lease)), Is.EqualTo(lease));
    }

    [Test]
    public void The_compact_row_is_smaller_than_the_wire_form()
    {
        var lease = Lease();

        Assert.That(LeaseRow.Encode(lease), Has.Length.LessThan(RegistryCodec.SerializeBody(lease).Length / 2));
    }

    private static IEnumerable<TestCaseData> DamagedRows()
    {
        yield return new TestCaseData(OlderStore.Row((ref MessagePackWriter w) => w.WriteArrayHeader(3))).SetName("{m}(wrong field count)");
        yield return new TestCaseData(OlderStore.Row((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(11);
            w.WriteNil();
        })).SetName("{m}(nil lease id)");
        var row = LeaseRow.Encode(Lease());
        yield return new TestCaseData(row[..^3]).SetName("{m}(truncated)");
        yield return new TestCaseData(row.Concat(new byte[] { 0xC0 }).ToArray()).SetName("{m}(trailing bytes)");
        var unknownProtocol = LeaseRow.Encode(Lease() with { Protocol = "sctp" });
        yield return new TestCaseData(unknownProtocol).SetName("{m}(unknown protocol)");
    }

    [TestCaseSource(nameof(DamagedRows))]
    public void A_damaged_row_is_refused_as_a_damaged_store(byte[] row)
    {
        var ex = Assert.Throws<RegistryStoreException>(() => LeaseRow.Decode(row));

        Assert.That(ex!.Message, Does.Contain("damaged").And.Contain("backup"));
    }

    [Test]
    public async Task Leases_of_a_format_1_store_survive_and_the_store_is_marked_with_the_current_format()
    {
        using var data = new TemporaryDirectory();
        var options = await TestRegistry.PoolOfItsOwnAsync(TestNodes.Options(o => o with { Store = RegistryStoreOptions.Default with { DataDirectory = data.Path } }));
        PortLease granted;
        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint);
            granted = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "node-a", Protocol = PortProtocols.Tcp, TtlMs = 600_000 }).Leases.Single();
        }
        // Rewrite the store as a format-1 build left it: wire-form lease rows, user_version 1.
        var journal = OlderStore.Rewrite(data.Path, "journal", "writes", ToFormat1, format: 1);
        Assert.That(journal, Is.Not.Empty, "the lease is in the journal");

        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint);
            var snapshot = dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
            Assert.That(snapshot.Leases.Select(l => (l.LeaseId, l.Port, l.FencingToken)), Is.EqualTo(new[] { (granted.LeaseId, granted.Port, granted.FencingToken) }));
        }
        Assert.That(OlderStore.FormatOf(data.Path), Is.EqualTo(SqliteRegistryStore.FormatVersion).And.EqualTo(3));
    }

    // Journal records are [kind, key, value] triples (SqliteRegistryStore.EncodeWrites): lease values go back to the wire form.
    private static byte[] ToFormat1(byte[] writes)
    {
        var decoded = SqliteRegistryStore.DecodeWrites(writes).ToList();
        var converted = decoded.Select(w => w.Key.Kind == StoredKind.Lease && w.Value is { } v
            ? new StoredWrite(w.Key, RegistryCodec.SerializeBody(LeaseRow.Decode(v)))
            : w).ToList();
        return SqliteRegistryStore.EncodeWrites(converted);
    }
}
