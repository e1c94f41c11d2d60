using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Server;

namespace Onex.Tests.Registry;

public class ReplyCacheTests
{
    private static readonly byte[] Body = [0x80];

    [Test]
    public void A_repeat_with_the_same_ids_and_body_is_a_hit()
    {
        var cache = new ReplyCache(10, TimeSpan.FromMinutes(5), 1 << 20, new FakeTimeProvider());
        cache.Add("c", "r1", "PortRequest", Body, [1, 2, 3], null);
        Assert.That(cache.Lookup("c", "r1", "PortRequest", Body, out var reply, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That(reply, Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void The_same_ids_with_another_body_are_a_mismatch()
    {
        var cache = new ReplyCache(10, TimeSpan.FromMinutes(5), 1 << 20, new FakeTimeProvider());
        cache.Add("c", "r1", "PortRequest", Body, [1], null);
        Assert.That(cache.Lookup("c", "r1", "PortRequest", [0x81, 0xA0, 0xA0], out _, out _), Is.EqualTo(ReplyCache.Outcome.Mismatch));
        Assert.That(cache.Lookup("c", "r1", "LeaseRelease", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Mismatch));
    }

    [Test]
    public void The_oldest_reply_goes_first_when_the_count_bound_is_reached()
    {
        var cache = new ReplyCache(2, TimeSpan.FromMinutes(5), 1 << 20, new FakeTimeProvider(), capacityPerClient: 2);
        cache.Add("c", "r1", "T", Body, [1], null);
        cache.Add("c", "r2", "T", Body, [2], null);
        cache.Add("c", "r3", "T", Body, [3], null);
        Assert.That(cache.Lookup("c", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Miss));
        Assert.That(cache.Lookup("c", "r3", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
    }

    [Test]
    public void Replies_are_forgotten_after_the_retention_time()
    {
        var time = new FakeTimeProvider();
        var cache = new ReplyCache(10, TimeSpan.FromMinutes(5), 1 << 20, time);
        cache.Add("c", "r1", "T", Body, [1], null);
        time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromMilliseconds(1));
        Assert.That(cache.Lookup("c", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit), "forgotten too early");
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(cache.Lookup("c", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Miss));
    }

    [Test]
    public void The_byte_bound_evicts_the_oldest_replies()
    {
        var cache = new ReplyCache(100, TimeSpan.FromMinutes(5), 3000, new FakeTimeProvider(), maxBytesPerClient: 3000);
        cache.Add("c", "r1", "T", Body, new byte[1000], null);
        cache.Add("c", "r2", "T", Body, new byte[1000], null);
        cache.Add("c", "r3", "T", Body, new byte[1000], null);
        Assert.That(cache.Lookup("c", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Miss));
        Assert.That(cache.Count, Is.EqualTo(2));
    }

    [Test]
    public void A_client_over_its_byte_share_loses_only_its_own_oldest_replies()
    {
        var cache = new ReplyCache(1000, TimeSpan.FromMinutes(5), 64_000, new FakeTimeProvider(), maxBytesPerClient: 8_000);
        cache.Add("legit", "r1", "PortRequest", Body, [1], null);
        for (var i = 0; i < 200; i++) cache.Add("flood", $"f{i}", "T", Body, new byte[1000], null);

        Assert.That(cache.Lookup("legit", "r1", "PortRequest", Body, out var reply, out _), Is.EqualTo(ReplyCache.Outcome.Hit), "another client's flood evicted a reply");
        Assert.That(reply, Is.EqualTo(new byte[] { 1 }));
        Assert.That(cache.BytesOf("flood"), Is.LessThanOrEqualTo(8_000));
        Assert.That(cache.Lookup("flood", "f199", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit), "the flooder keeps its newest replies");
        Assert.That(cache.Lookup("flood", "f0", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Miss));
    }

    [Test]
    public void A_client_over_its_count_share_loses_only_its_own_oldest_replies()
    {
        var cache = new ReplyCache(100, TimeSpan.FromMinutes(5), 1 << 20, new FakeTimeProvider(), capacityPerClient: 10);
        cache.Add("legit", "r1", "T", Body, [1], null);
        for (var i = 0; i < 500; i++) cache.Add("flood", $"f{i}", "T", Body, [2], null);

        Assert.That(cache.Lookup("legit", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That(cache.Count, Is.EqualTo(11));
    }

    [Test]
    public void Over_the_whole_bound_the_client_holding_the_most_bytes_gives_up_its_replies_first()
    {
        // Many flooding client ids, each within its share, together over the whole bound.
        var cache = new ReplyCache(10_000, TimeSpan.FromMinutes(5), 20_000, new FakeTimeProvider(), maxBytesPerClient: 8_000);
        cache.Add("legit", "r1", "T", Body, new byte[100], null);
        for (var i = 0; i < 300; i++) cache.Add($"flood-{i % 30}", $"f{i}", "T", Body, new byte[1000], null);

        Assert.That(cache.Lookup("legit", "r1", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That(cache.Bytes, Is.LessThanOrEqualTo(20_000));
    }

    [Test]
    public void Another_clients_flood_of_large_requests_does_not_make_a_retried_port_request_run_again()
    {
        using var h = new RegistryHarness();
        var request = new PortRequest { NodeId = "n1" };
        var first = h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "legit", request));
        // 80 requests of about 1 MB each from another client (each an INVALID_ARGUMENT reply, remembered with its body).
        for (var i = 0; i < 80; i++)
            h.Dispatcher.Dispatch(RegistryCodec.Encode($"f{i}", "flood", new PortRequest { NodeId = "n1", Purpose = new string('x', 1_000_000) }));

        var retry = h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "legit", request));

        Assert.That(retry, Is.EqualTo(first), "the retry was not answered with the first reply");
        Assert.That(h.Registry.Leases.Count, Is.EqualTo(1), "the retry created a second lease");
        Assert.That(h.Dispatcher.Cache.BytesOf("flood"), Is.LessThanOrEqualTo(h.Options.ReplyCacheMaxBytes / ReplyCache.DefaultClientShareDivisor));
    }

    [Test]
    public void A_remembered_port_exhausted_is_answered_again_to_the_same_ids_and_a_new_request_id_succeeds()
    {
        // PROTOCOL.md section 4 and the catalogue's "retry helps": only INTERNAL and UNAVAILABLE are retried with the
        // same ids; PORT_EXHAUSTED is remembered, and succeeds later when sent with a new requestId.
        using var h = new RegistryHarness(pool: [20000]);
        var held = h.Lease("holder");
        var exhausted = h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "waiter", new PortRequest { NodeId = "n1" }));
        Assert.That(TestDealer.ExpectError(TestDealer.DecodeReply(exhausted)).Code, Is.EqualTo(ErrorCodes.PortExhausted));
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = held.LeaseId, NodeId = "holder", FencingToken = held.FencingToken }));
        h.Time.Advance(h.Options.Leases.Quarantine + TimeSpan.FromSeconds(1));

        var sameIds = h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "waiter", new PortRequest { NodeId = "n1" }));
        var newId = TestDealer.DecodeReply(h.Dispatcher.Dispatch(RegistryCodec.Encode("r2", "waiter", new PortRequest { NodeId = "n1" })));

        Assert.That(sameIds, Is.EqualTo(exhausted), "a retry with the same ids must get the remembered reply");
        Assert.That(TestDealer.Expect<PortGrant>(newId).Leases.Single().Port, Is.EqualTo(20000));
    }

    [Test]
    public void A_stopping_registry_answers_unavailable_and_changes_nothing()
    {
        using var h = new RegistryHarness();
        h.Dispatcher.Stopping = true;
        var reply = TestDealer.DecodeReply(h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "c", new PortRequest { NodeId = "n1" })));
        var error = TestDealer.ExpectError(reply);
        Assert.That((error.Code, error.Details["reason"]), Is.EqualTo((ErrorCodes.Unavailable, "stopping")));
        Assert.That(h.Registry.Leases.Count, Is.Zero);
    }

    [Test]
    public void A_retried_error_is_answered_from_memory_and_counted_again()
    {
        using var h = new RegistryHarness();
        var frame = RegistryCodec.Encode("r1", "c", new NodeHeartbeat { NodeId = "ghost" });
        var first = h.Dispatcher.Dispatch(frame);
        h.Announce("ghost"); // executing the retry now would succeed
        var second = h.Dispatcher.Dispatch(frame);
        Assert.That(second, Is.EqualTo(first), "a retry must get the first reply");
        Assert.That(h.Registry.Stats.ErrorsByCode[ErrorCodes.NotFound], Is.EqualTo(2));
    }

    [Test]
    public void An_unexpected_failure_in_a_handler_answers_internal_and_changes_nothing()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 3));
        h.Availability.Throws = true;

        var reply = TestDealer.DecodeReply(h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "c", new PortRequest { NodeId = "n1", Count = 2 })));

        Assert.That(TestDealer.ExpectError(reply).Code, Is.EqualTo(ErrorCodes.Internal));
        Assert.That(h.Registry.Leases.Pool.FreeInOrder, Is.EqualTo(new[] { 20000, 20001, 20002 }), "the failed request lost or reordered ports");
        Assert.That(h.Sink.Changes, Is.Empty);
        h.Availability.Throws = false;
        var retry = TestDealer.DecodeReply(h.Dispatcher.Dispatch(RegistryCodec.Encode("r1", "c", new PortRequest { NodeId = "n1", Count = 2 })));
        Assert.That(TestDealer.Expect<PortGrant>(retry).Leases, Has.Count.EqualTo(2), "INTERNAL is not remembered: the retry executes");
    }

    [Test]
    public void A_remembered_error_code_and_a_reply_larger_than_a_chunk_share_come_back_whole()
    {
        var cache = new ReplyCache(10, TimeSpan.FromMinutes(5), 1 << 24, new FakeTimeProvider(), maxBytesPerClient: 1 << 24, capacityPerClient: 10);
        var large = Enumerable.Range(0, ChunkedBytes.OwnArrayAbove + 17).Select(i => (byte)i).ToArray();
        cache.Add("c", "r1", "Describe", Body, large, null);
        cache.Add("c", "r2", "PortRequest", [0x81, 0xA1, 0x78], [9, 8, 7], ErrorCodes.PortExhausted);

        Assert.That(cache.Lookup("c", "r1", "Describe", Body, out var first, out var noCode), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That((first, noCode), Is.EqualTo((large, (string?)null)));
        Assert.That(cache.Lookup("c", "r2", "PortRequest", [0x81, 0xA1, 0x78], out var second, out var code), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That((second, code), Is.EqualTo((new byte[] { 9, 8, 7 }, (string?)ErrorCodes.PortExhausted)));
        Assert.That(cache.Lookup("c", "r2", "PortRequest", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Mismatch), "the kept body is compared");
    }

    [Test]
    public void Replies_forgotten_out_of_order_do_not_keep_their_chunks_and_the_kept_ones_stay_whole()
    {
        // A slow client's reply between every few of a flooding client's: the flooder's share keeps only its newest
        // replies, so every chunk the flood passed through is held by the slow client's replies alone.
        var time = new FakeTimeProvider();
        var cache = new ReplyCache(100_000, TimeSpan.FromMinutes(5), 64L << 20, time, maxBytesPerClient: 200_000, capacityPerClient: 100_000);
        var kept = new List<(string Id, byte[] Reply)>();
        for (var i = 0; i < 40_000; i++)
        {
            cache.Add("flood", $"f{i}", "T", Body, new byte[400], null);
            if (i % 100 == 0)
            {
                var reply = BitConverter.GetBytes(i);
                cache.Add("slow", $"s{i}", "T", Body, reply, null);
                kept.Add(($"s{i}", reply));
            }
        }

        // 16 MB of replies went through; about 200 KB of the flood's and 400 small ones are kept.
        Assert.That(cache.Chunks * (long)ChunkedBytes.ChunkBytes, Is.LessThanOrEqualTo(2 * 200_000 + 8L * ChunkedBytes.ChunkBytes),
            "chunks held by a few replies each were not given back");
        foreach (var (id, reply) in kept)
        {
            Assert.That(cache.Lookup("slow", id, "T", Body, out var found, out _), Is.EqualTo(ReplyCache.Outcome.Hit), id);
            Assert.That(found, Is.EqualTo(reply), id);
        }
        Assert.That(cache.Lookup("flood", "f39999", "T", Body, out var newest, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
        Assert.That(newest, Is.EqualTo(new byte[400]));
    }

    [Test]
    public void A_replaced_or_expired_reply_gives_its_bytes_back()
    {
        var time = new FakeTimeProvider();
        var cache = new ReplyCache(1_000_000, TimeSpan.FromMinutes(1), 1L << 30, time, maxBytesPerClient: 1L << 30, capacityPerClient: 1_000_000);
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 5_000; i++) cache.Add("c", $"r{i}", "T", Body, new byte[300], null);
            time.Advance(TimeSpan.FromMinutes(1));
        }
        cache.Lookup("c", "other", "T", Body, out _, out _); // a lookup forgets what has expired

        Assert.That(cache.Count, Is.Zero);
        Assert.That(cache.Chunks, Is.LessThanOrEqualTo(ChunkedBytes.KeptFreeChunks + 1), "expired replies kept their chunks");
    }

    [Test]
    public void A_client_past_its_share_leaves_no_forgotten_slots_in_the_age_queue()
    {
        // One client past its share forgets its oldest reply on every add: that reply is the oldest of all, so its slot
        // leaves the age queue at once instead of piling up until the queue is compacted.
        var cache = new ReplyCache(10_000, TimeSpan.FromMinutes(5), 64L << 20, new FakeTimeProvider(), capacityPerClient: 100);
        for (var i = 0; i < 5_000; i++) cache.Add("c", $"r{i}", "T", Body, new byte[40], null);

        Assert.That((cache.Count, cache.QueuedSlots), Is.EqualTo((100, 100)));
    }

    [Test]
    public void Slots_forgotten_out_of_order_are_compacted_away_and_the_kept_replies_age_in_order()
    {
        // A calm client's replies at the head of the age queue, within its share, and a busy client past its share behind
        // them: the busy client's forgotten replies cannot leave from the head, so the queue is compacted.
        var time = new FakeTimeProvider();
        var cache = new ReplyCache(100_000, TimeSpan.FromMinutes(1), 64L << 20, time, capacityPerClient: 10);
        for (var i = 0; i < 5; i++) cache.Add("calm", $"c{i}", "T", Body, new byte[40], null);
        var most = 0;
        for (var i = 0; i < 3_000; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            cache.Add("busy", $"b{i}", "T", Body, new byte[40], null);
            most = Math.Max(most, cache.QueuedSlots);
        }

        Assert.That(most, Is.LessThanOrEqualTo(2 * 15 + 1024 + 1), "the age queue was not compacted");
        // Past the calm replies' minute, they expire from the head; the busy client's last ten (30 s younger) stay.
        time.Advance(TimeSpan.FromSeconds(30.5));
        cache.Lookup("calm", "none", "T", Body, out _, out _);
        Assert.That((cache.Count, cache.QueuedSlots), Is.EqualTo((10, 10)));
        Assert.That(cache.Lookup("busy", "b2999", "T", Body, out _, out _), Is.EqualTo(ReplyCache.Outcome.Hit));
    }
}
