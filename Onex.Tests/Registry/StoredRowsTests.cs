using System.Buffers;
using MessagePack;
using Onex.Protocol;
using Onex.RegistryNode.Storage;

namespace Onex.Tests.Registry;

/// <summary>
/// The registry writes the values of changed rows straight into the store's buffer (<see cref="IStoredRows"/>) instead
/// of handing over an array per row. Those bytes must be exactly the stored form (<c>RegistryState.Read</c>, which a
/// restart decodes), for every kind of row and for rows whose entity is gone.
/// </summary>
public class StoredRowsTests
{
    [Test]
    public void Rows_written_into_the_buffer_are_the_stored_form_of_every_kind()
    {
        using var harness = new RegistryHarness();
        harness.Announce("n1");
        harness.RegisterBus("bus-a");
        harness.RegisterTool("tool-a");
        var kept = harness.Lease("n1", ttlMs: 60_000);
        var released = harness.Lease("n1", ttlMs: 60_000);
        harness.Do(r => r.Handle(new LeaseRelease { LeaseId = released.LeaseId, NodeId = "n1", FencingToken = released.FencingToken }));
        var expiring = harness.Lease("n2", ttlMs: 1_000);
        harness.Time.Advance(TimeSpan.FromSeconds(2)); // the reaper expires it: an expired-lease row, its port quarantined

        var marked = harness.Registry.Changes.Marked.ToList();
        Assert.That(marked.Select(k => k.Kind).Distinct(), Is.SupersetOf(new[]
        {
            StoredKind.Meta, StoredKind.Lease, StoredKind.ExpiredLease, StoredKind.Port, StoredKind.Node, StoredKind.Bus, StoredKind.Tool,
        }), "the scenario must change a row of every kind");
        Assert.That(marked, Does.Contain(new StateKey(StoredKind.Lease, released.LeaseId)), "a released lease is a deleted row");
        Assert.That(marked, Does.Contain(new StateKey(StoredKind.Lease, kept.LeaseId)));
        Assert.That(marked, Does.Contain(new StateKey(StoredKind.ExpiredLease, expiring.LeaseId)));

        IStoredRows rows = harness.Registry;
        foreach (var key in marked)
        {
            var expected = harness.Registry.Read(key);
            var buffer = new ArrayBufferWriter<byte>();
            var writer = new MessagePackWriter(buffer);
            var present = rows.TryWrite(key, ref writer);
            writer.Flush();
            Assert.That(present, Is.EqualTo(expected is not null), $"{key}: present");
            Assert.That(buffer.WrittenSpan.ToArray(), Is.EqualTo(expected ?? []), $"{key}: the bytes written differ from the stored form");
        }
    }

    [Test]
    public void Rows_committed_from_the_registry_load_back_as_the_stored_form()
    {
        using var data = new Onex.Tests.Infrastructure.TemporaryDirectory();
        using var harness = new RegistryHarness();
        harness.Announce("n1");
        var lease = harness.Lease("n1", ttlMs: 60_000);
        var expected = harness.Registry.Changes.Marked.ToDictionary(k => k, k => harness.Registry.Read(k));

        using (var store = SqliteRegistryStore.Open(RegistryStoreOptions.Default with { DataDirectory = data.Path }))
        {
            store.Load();
            harness.Registry.CommitTo(store, [], 0);
        }
        Assert.That(harness.Registry.Changes.Any, Is.False, "a commit forgets the marks");

        using var reopened = SqliteRegistryStore.Open(RegistryStoreOptions.Default with { DataDirectory = data.Path });
        var loaded = reopened.Load().Rows;
        Assert.That(loaded.Keys, Is.EquivalentTo(expected.Where(e => e.Value is not null).Select(e => e.Key)));
        foreach (var (key, value) in expected.Where(e => e.Value is not null))
            Assert.That(loaded[key], Is.EqualTo(value), $"{key}: loaded bytes differ from the stored form");
        Assert.That(LeaseRow.Decode(loaded[new StateKey(StoredKind.Lease, lease.LeaseId)]).FencingToken, Is.EqualTo(lease.FencingToken));
    }

    [Test]
    public void A_stored_record_is_read_back_as_written_and_one_that_is_no_record_is_a_store_error()
    {
        var record = new EventBusRecord
        {
            Name = "bus-ü", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = "n1", RegisteredAt = 1,
            Metadata = new Dictionary<string, string> { ["team"] = "ops" },
        };
        var read = StoredRecords.Read<EventBusRecord>(RegistryCodec.SerializeBody(record), StoredKind.Bus);
        Assert.That(RegistryCodec.SerializeBody(read), Is.EqualTo(RegistryCodec.SerializeBody(record)), "a stored record reads back changed");

        // 0xc1 is never used in MessagePack; a string where a map belongs is no record either.
        foreach (var damaged in new[] { new byte[] { 0xc1 }, RegistryCodec.SerializeBody("text") })
        {
            var error = Assert.Throws<RegistryStoreException>(() => StoredRecords.Read<EventBusRecord>(damaged, StoredKind.Bus));
            Assert.That(error!.Message, Does.Contain("Bus").And.Contain("Restore a backup"), "the message names the kind of row and what to do");
        }
    }
}
