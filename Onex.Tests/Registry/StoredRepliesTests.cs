using System.Buffers;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>The stored form of kept replies (store format 3) and the format-2 rows a store may still hold.</summary>
public class StoredRepliesTests
{
    private static readonly PortLease Granted = new()
    {
        LeaseId = "L-0001",
        Port = 20_001,
        Host = "127.0.0.1",
        NodeId = "node-a",
        Protocol = PortProtocols.Both,
        TtlMs = 30_000,
        GrantedAt = 1_700_000_000_000,
        ExpiresAt = 1_700_000_030_000,
        FencingToken = 42,
    };

    private static StoredReply Reply(string clientId, string requestId, string type, byte[] body, byte[] reply, string? errorCode = null, long storedAt = 1_700_000_000_000) =>
        new(clientId, requestId, type, ReplyCache.HashOf(body), reply, errorCode, storedAt);

    private static byte[] Body<T>(T body) => RegistryCodec.SerializeBody(body);

    // Replies as the registry makes them: a grant, an Ack, an Error, a tenant's (cache key "tenant/client", reply
    // echoing "client"), one that is not an envelope at all, one echoing another request id, and a later one.
    private static List<StoredReply> Mixed()
    {
        var request = new PortRequest { NodeId = "node-a" };
        var release = new LeaseRelease { LeaseId = "L-0001", NodeId = "node-a", FencingToken = 42 };
        var error = new Error { Code = ErrorCodes.LeaseExpired, Message = "The lease expired.", Details = new Dictionary<string, string> { ["leaseId"] = "L-0001" } };
        return
        [
            Reply("client-1", "r1", "PortRequest", Body(request), RegistryCodec.Encode("r1", "client-1", new PortGrant { Leases = [Granted] })),
            Reply("client-1", "r2", "LeaseRelease", Body(release), RegistryCodec.Encode("r2", "client-1", new Ack { Ok = true })),
            Reply("client-2", "r1", "LeaseRelease", Body(release), RegistryCodec.Encode("r1", "client-2", error), ErrorCodes.LeaseExpired),
            Reply("team-b/client-1", "r3", "PortRequest", Body(request), RegistryCodec.Encode("r3", "client-1", new PortGrant { Leases = [Granted] })),
            Reply("client-1", "r4", "PortRequest", Body(request), [0x93, 1, 2, 3]),
            Reply("client-1", "r5", "PortRequest", Body(request), RegistryCodec.Encode("other-id", "client-1", new Ack { Ok = true })),
            Reply("client-1", "r6", "LeaseRelease", [], RegistryCodec.Encode("r6", "client-1", new Ack { Ok = true }), storedAt: 1_700_000_000_250),
        ];
    }

    private static byte[] Encode(IReadOnlyList<StoredReply> replies)
    {
        var buffer = new ArrayBufferWriter<byte>();
        new StoredReplies().Encode(replies, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    // What format 2 wrote: [[clientId, requestId, messageType, body, reply, errorCode, storedAt], ...].
    private static byte[] Format2(IReadOnlyList<(StoredReply Reply, byte[] Body)> replies)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(replies.Count);
        foreach (var (reply, body) in replies)
        {
            writer.WriteArrayHeader(7);
            writer.Write(reply.ClientId);
            writer.Write(reply.RequestId);
            writer.Write(reply.MessageType);
            writer.Write(body);
            writer.Write(reply.Reply);
            writer.Write(reply.ErrorCode);
            writer.Write(reply.StoredAt);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static object Fields(StoredReply reply) =>
        (reply.ClientId, reply.RequestId, reply.MessageType, reply.BodyHash, Convert.ToHexString(reply.Reply), reply.ErrorCode, reply.StoredAt);

    [Test]
    public void Replies_read_back_equal_with_every_reply_byte_for_byte()
    {
        var replies = Mixed();

        var decoded = StoredReplies.Decode(Encode(replies));

        Assert.That(decoded.Select(Fields), Is.EqualTo(replies.Select(Fields)));
    }

    [Test]
    public void A_store_writer_reused_for_another_row_names_its_strings_afresh()
    {
        var writer = new StoredReplies();
        var first = new ArrayBufferWriter<byte>();
        writer.Encode(Mixed(), first);
        var second = new ArrayBufferWriter<byte>();
        var later = Mixed().Skip(2).ToList();
        writer.Encode(later, second);

        Assert.That(StoredReplies.Decode(second.WrittenSpan.ToArray()).Select(Fields), Is.EqualTo(later.Select(Fields)));
    }

    [Test]
    public void A_row_of_lease_pairs_is_under_half_the_format_2_row()
    {
        // 32 grant + release pairs of one client, as one wake-up of a loaded registry commits them.
        var replies = new List<(StoredReply, byte[])>();
        for (var i = 0; i < 32; i++)
        {
            var lease = Granted with { LeaseId = $"L-{i:x4}", Port = 20_000 + i, FencingToken = 100 + i };
            var request = Body(new PortRequest { NodeId = "node-a", Protocol = PortProtocols.Both, Purpose = "web" });
            var release = Body(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "node-a", FencingToken = lease.FencingToken });
            replies.Add((Reply("node-a/5f0c2e7d9b", $"r{2 * i}", "PortRequest", request, RegistryCodec.Encode($"r{2 * i}", "node-a/5f0c2e7d9b", new PortGrant { Leases = [lease] })), request));
            replies.Add((Reply("node-a/5f0c2e7d9b", $"r{2 * i + 1}", "LeaseRelease", release, RegistryCodec.Encode($"r{2 * i + 1}", "node-a/5f0c2e7d9b", new Ack { Ok = true })), release));
        }

        var lean = Encode(replies.Select(r => r.Item1).ToList());
        var format2 = Format2(replies);

        Assert.That(lean, Has.Length.LessThan(format2.Length / 2), $"format 3: {lean.Length} bytes, format 2: {format2.Length}");
    }

    [Test]
    public void A_format_2_row_is_still_read_with_its_bodies_hashed()
    {
        var replies = Mixed();
        var bodies = new[] { "a"u8.ToArray(), [], [1, 2, 3], [0xC0], "b"u8.ToArray(), [7], [] };
        var stored = replies.Select((r, i) => (r with { BodyHash = ReplyCache.HashOf(bodies[i]) }, bodies[i])).ToList();

        var decoded = StoredReplies.Decode(Format2(stored));

        Assert.That(decoded.Select(Fields), Is.EqualTo(stored.Select(s => Fields(s.Item1))));
    }

    private static IEnumerable<TestCaseData> DamagedRows()
    {
        var row = Encode(Mixed());
        yield return new TestCaseData(row[..^3]).SetName("{m}(truncated)");
        yield return new TestCaseData(OlderStore.Row((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(3);
            w.Write(4);
        })).SetName("{m}(unknown form)");
        yield return new TestCaseData(OneReply((ref MessagePackWriter w) => w.Write(5))) // names a string the row never wrote
            .SetName("{m}(string index past the row's strings)");
        yield return new TestCaseData(OneReply((ref MessagePackWriter w) =>
        {
            w.Write("client");
            w.Write("r1");
            w.Write("PortRequest");
            w.Write(new byte[] { 1, 2, 3 }); // a hash of 3 bytes
        })).SetName("{m}(short hash)");
    }

    // A format-3 row of one reply whose fields begin as written by `fields`.
    private static byte[] OneReply(OlderStore.RowWriter fields) => OlderStore.Row((ref MessagePackWriter w) =>
    {
        w.WriteArrayHeader(3);
        w.Write(3);
        w.Write(0);
        w.WriteArrayHeader(1);
        w.WriteArrayHeader(7);
        fields(ref w);
    });

    [TestCaseSource(nameof(DamagedRows))]
    public void A_damaged_row_is_refused_as_a_damaged_store(byte[] row)
    {
        var ex = Assert.Throws<RegistryStoreException>(() => StoredReplies.Decode(row));

        Assert.That(ex!.Message, Does.Contain("damaged").And.Contain("backup"));
    }

    [Test]
    public async Task Replies_of_a_format_2_store_answer_retries_and_still_tell_a_reused_id_and_the_store_is_marked_format_3()
    {
        using var data = new TemporaryDirectory();
        var options = await TestRegistry.PoolOfItsOwnAsync(TestNodes.Options(o => o with { Store = RegistryStoreOptions.Default with { DataDirectory = data.Path } }));
        const string clientId = "retrying-client";
        var request = new PortRequest { NodeId = "node-a", TtlMs = 600_000 };
        byte[] first;
        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint, clientId);
            dealer.Send("req-1", request);
            first = dealer.ReceiveFrame();
        }
        // Rewrite the kept replies as a format-2 build left them: each with its request body, user_version 2.
        var stored = OlderStore.Rewrite(data.Path, "replies", "entries", entries => Format2(StoredReplies.Decode(entries).Select(r => (r, Body(request))).ToList()), format: 2);
        Assert.That(stored.SelectMany(StoredReplies.Decode).Select(r => r.RequestId), Has.Member("req-1"), "the grant's reply is stored");

        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint, clientId);
            dealer.Send("req-1", request);
            Assert.That(dealer.ReceiveFrame(), Is.EqualTo(first), "the retry must get the first reply, byte for byte");
            dealer.Send("req-1", request with { NodeId = "node-b" });
            var error = TestDealer.ExpectError(dealer.Receive());
            Assert.That((error.Code, error.Details["reason"]), Is.EqualTo((ErrorCodes.InvalidArgument, "reused")), "another body under the same ids is not a retry");
            Assert.That(dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Leases, Has.Count.EqualTo(1), "the retry created a second lease");
        }
        Assert.That(OlderStore.FormatOf(data.Path), Is.EqualTo(SqliteRegistryStore.FormatVersion).And.EqualTo(3));
    }
}
