using Microsoft.Extensions.Time.Testing;
using System.Buffers;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Hosting;
using Onex.Tests.Auth;
using Onex.Tests.Registry;

namespace Onex.Tests.Watches;

/// <summary>The change stream over the request socket (issue 14 item 4, PROTOCOL.md 16.7), against in-process nodes.</summary>
public class WatchStreamTests
{
    private static async Task<long> SequenceAsync(RegistryNodeHost host) => await host.InvokeAsync(r => r.Journal.Sequence);

    private static void Populate(TestDealer owner, string prefix)
    {
        owner.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = prefix + "-node" });
        owner.Call<EventBusRegistration, EventBusRecord>(new EventBusRegistration
        {
            Name = prefix + "-bus", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:3"], NodeId = prefix + "-node",
        });
        owner.Call<PortRequest, PortGrant>(new PortRequest { NodeId = prefix + "-node", Count = 1 });
    }

    private static IEnumerable<string> NodesNamed(IEnumerable<RegistryChange> changes) =>
        changes.Select(c => c.NewValue ?? c.OldValue).Select(e => e?.Node?.NodeId ?? e?.Bus?.NodeId ?? e?.Lease?.NodeId ?? e?.Tool?.NodeId ?? "?").Distinct();

    [Test]
    public async Task Two_tenants_watching_see_only_their_own_changes_and_an_admin_sees_both()
    {
        using var files = new AuthTestFiles();
        // A clock that moves only when told: a stall of the loaded machine cannot add a change of its own (the pause
        // detector renews leases), so the streams hold exactly what the requests did. A heartbeat is sent on demand.
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000));
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path }, time);
        using var watchA = RawWatcher.Open(host.RouterEndpoint, files.ReaderA, new Watch { Credit = 1000 });
        using var watchB = RawWatcher.Open(host.RouterEndpoint, files.NodeB, new Watch { Credit = 1000 });
        using var watchAdmin = RawWatcher.Open(host.RouterEndpoint, files.Admin, new Watch { Credit = 1000 });
        using var ownerA = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        using var ownerB = new TestDealer(host.RouterEndpoint) { Token = files.NodeB };

        Populate(ownerA, "a");
        Populate(ownerB, "b");
        var last = await SequenceAsync(host);
        // Streams that did not see the last change learn they are past it from a heartbeat.
        time.Advance(TestNodes.Options().HeartbeatInterval);

        var seenA = RawWatcher.Changes(watchA.ReadUntilCovered(last));
        var seenB = RawWatcher.Changes(watchB.ReadUntilCovered(last));
        var seenAdmin = RawWatcher.Changes(watchAdmin.ReadUntilCovered(last));
        Assert.Multiple(() =>
        {
            Assert.That(NodesNamed(seenA), Is.EqualTo(new[] { "a-node" }), "tenant a's reader sees only tenant a's changes");
            Assert.That(NodesNamed(seenB), Is.EqualTo(new[] { "b-node" }), "tenant b's node sees only tenant b's changes");
            Assert.That(NodesNamed(seenAdmin), Is.EquivalentTo(new[] { "a-node", "b-node" }), "the admin sees both tenants");
            Assert.That(seenA.Select(c => c.ChangeType), Is.EqualTo(new[] { ChangeTypes.NodeRegistered, ChangeTypes.BusRegistered, ChangeTypes.LeaseGranted }));
            Assert.That(seenAdmin, Has.Count.EqualTo(seenA.Count + seenB.Count), "the admin's stream is the union");
            Assert.That(seenAdmin.Select(c => c.Sequence), Is.Ordered.Ascending, "changes come in sequence order");
            Assert.That(seenAdmin.First(c => c.Key == "a-node").NewValue!.Node!.Metadata![AuthGate.TenantKey], Is.EqualTo("a"), "the admin sees the tenant named");
        });
    }

    [Test]
    public async Task A_watch_follows_its_prefix_only()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        using var watch = RawWatcher.Open(host.RouterEndpoint, files.NodeA, new Watch { Prefix = "registry.bus.", Credit = 100 });
        using var owner = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        Populate(owner, "a");

        var changes = RawWatcher.Changes(watch.ReadUntilCovered(await SequenceAsync(host)));

        Assert.That(changes.Select(c => c.ChangeType), Is.EqualTo(new[] { ChangeTypes.BusRegistered }));
    }

    [TestCase(null)]
    [TestCase("unknown")]
    public async Task A_watch_without_a_known_token_is_refused(string? token)
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        using var dealer = new TestDealer(host.RouterEndpoint) { Token = token is null ? null : AccessTokens.Generate() };

        var error = TestDealer.ExpectError(dealer.Request(new Watch { Credit = 10 }));

        Assert.That((error.Code, error.Details["reason"]), Is.EqualTo((ErrorCodes.Unauthenticated, token is null ? "missing" : "unknown")));
        Assert.That(await host.InvokeAsync(_ => host.Watches!.Count), Is.Zero, "a refused Watch opened a stream");
    }

    [Test]
    public async Task A_watcher_that_grants_no_credit_is_held_within_the_bound_then_told_it_fell_behind()
    {
        const int bound = 20;
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with
        {
            AuthFile = files.Path,
            Watches = o.Watches with { MaxQueuedEvents = bound },
        });
        using var slow = RawWatcher.Open(host.RouterEndpoint, files.Admin, new Watch { Credit = 0 });
        using var owner = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        owner.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "a-node" });

        var peak = 0L;
        var queuedWhileOpen = new List<long>();
        for (var i = 0; i < bound; i++)
        {
            var lease = owner.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "a-node", Count = 1 }).Leases[0];
            owner.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "a-node", FencingToken = lease.FencingToken });
            var (count, queued) = await host.InvokeAsync(_ => (host.Watches!.Count, host.Watches.QueuedEvents));
            peak = Math.Max(peak, queued);
            if (count == 1) queuedWhileOpen.Add(queued);
        }

        var ended = slow.Next();
        Assert.Multiple(() =>
        {
            Assert.That(queuedWhileOpen, Is.Not.Empty.And.All.GreaterThan(0L), "the registry held the watcher's changes while it had no credit");
            Assert.That(peak, Is.LessThanOrEqualTo(bound), "more messages were held for one watcher than its bound");
            Assert.That((ended.Kind, ended.Code), Is.EqualTo((WatchEventKinds.Ended, ErrorCodes.WatchFellBehind)), ended.Message);
        });
        var (left, held) = await host.InvokeAsync(_ => (host.Watches!.Count, host.Watches.QueuedEvents));
        Assert.That((left, held), Is.EqualTo((0, 0L)), "the ended watch still holds messages");
        var credit = TestDealer.ExpectError(slow.Dealer.Request(new WatchCredit { WatchId = slow.WatchId, Credit = 10 }));
        Assert.That(credit.Code, Is.EqualTo(ErrorCodes.NotFound), "credit for an ended watch");
    }

    [Test]
    public async Task Credit_limits_what_is_sent_and_more_credit_releases_the_rest()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path, HeartbeatInterval = TimeSpan.FromMinutes(10) });
        await host.InvokeAsync(_ => 0); // behind the start's first heartbeat on the work queue: no heartbeat takes credit below
        using var watch = RawWatcher.Open(host.RouterEndpoint, files.NodeA, new Watch { Credit = 2 });
        using var owner = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        Populate(owner, "a"); // three changes

        var first = new[] { watch.Next(), watch.Next() };
        var waiting = await host.InvokeAsync(_ => host.Watches!.QueuedEvents);
        watch.Grant(5);
        var third = watch.Next();

        Assert.Multiple(() =>
        {
            Assert.That(first.Select(e => e.Change?.ChangeType), Is.EqualTo(new[] { ChangeTypes.NodeRegistered, ChangeTypes.BusRegistered }));
            Assert.That(waiting, Is.EqualTo(1), "the third change waits for credit");
            Assert.That(third.Change?.ChangeType, Is.EqualTo(ChangeTypes.LeaseGranted));
        });
    }

    [Test]
    public async Task A_watch_from_a_start_sequence_replays_the_held_changes_then_continues()
    {
        await using var host = await TestNodes.StartAsync();
        using var owner = new TestDealer(host.RouterEndpoint);
        var before = await SequenceAsync(host);
        // A watch open while the changes happen sees them live; the other replays them from the history.
        using var live = RawWatcher.Open(host.RouterEndpoint, null, new Watch { Credit = 100 });
        Populate(owner, "x");
        // A change with a large body too (the history keeps those as the change, small ones as bytes).
        owner.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "x-large", Metadata = new Dictionary<string, string> { ["notes"] = new('n', 2_000) } });
        var epoch = host.Epoch;

        using var watch = RawWatcher.Open(host.RouterEndpoint, null, new Watch { StartSequence = before + 2, Epoch = epoch, Credit = 100 });
        owner.Call<NodeDeparture, Ack>(new NodeDeparture { NodeId = "x-node" });
        var last = await SequenceAsync(host);
        var changes = RawWatcher.Changes(watch.ReadUntilCovered(last));
        var liveChanges = RawWatcher.Changes(live.ReadUntilCovered(last)).ToDictionary(c => c.Sequence);

        Assert.Multiple(() =>
        {
            Assert.That(watch.Started.Sequence, Is.EqualTo(before + 1), "the stream starts just before the start sequence");
            Assert.That(changes.Select(c => c.Sequence), Is.EqualTo(Enumerable.Range((int)before + 2, changes.Count).Select(i => (long)i)),
                "an open registry's watch gets every change from the start sequence on, without holes");
            Assert.That(changes.Take(3).Select(c => c.ChangeType), Is.EqualTo(new[] { ChangeTypes.BusRegistered, ChangeTypes.LeaseGranted, ChangeTypes.NodeRegistered }), "the replayed changes");
            Assert.That(changes[^1].ChangeType, Is.EqualTo(ChangeTypes.NodeRemoved), "the live change after the replay");
            Assert.That(changes.Select(c => Convert.ToHexString(RegistryCodec.SerializeBody(c))),
                Is.EqualTo(changes.Select(c => Convert.ToHexString(RegistryCodec.SerializeBody(liveChanges[c.Sequence])))),
                "a replayed change is the change as it was broadcast");
        });
    }

    [Test]
    public async Task A_start_sequence_no_longer_held_or_of_another_epoch_asks_for_a_resync()
    {
        await using var host = await TestNodes.StartAsync(o => o with { Watches = o.Watches with { HistoryChanges = 2 } });
        using var owner = new TestDealer(host.RouterEndpoint);
        Populate(owner, "x"); // three changes, two held
        var last = await SequenceAsync(host);

        var old = TestDealer.ExpectError(owner.Request(new Watch { StartSequence = last - 2, Credit = 1 }));
        var epoch = TestDealer.ExpectError(owner.Request(new Watch { StartSequence = last, Epoch = "another-epoch", Credit = 1 }));
        var held = TestDealer.Expect<WatchEvent>(owner.Request(new Watch { StartSequence = last - 1, Credit = 0 }));

        Assert.Multiple(() =>
        {
            Assert.That((old.Code, old.Details["reason"], old.Details["oldest"]), Is.EqualTo((ErrorCodes.ResyncRequired, "history", (last - 1).ToString())), old.Message);
            Assert.That((epoch.Code, epoch.Details["reason"]), Is.EqualTo((ErrorCodes.ResyncRequired, "epoch")), epoch.Message);
            Assert.That((held.Kind, held.Sequence), Is.EqualTo((WatchEventKinds.Started, last - 2)), "the oldest change held can still be replayed");
        });
    }

    [Test]
    public async Task Cancel_ends_a_watch_and_is_idempotent()
    {
        await using var host = await TestNodes.StartAsync();
        using var watch = RawWatcher.Open(host.RouterEndpoint, null, new Watch { Credit = 0 });

        TestDealer.Expect<Ack>(watch.Dealer.Request(new WatchCancel { WatchId = watch.WatchId }));
        TestDealer.Expect<Ack>(watch.Dealer.Request(new WatchCancel { WatchId = watch.WatchId }));

        Assert.That(await host.InvokeAsync(_ => host.Watches!.Count), Is.Zero);
    }

    [Test]
    public async Task Watches_per_connection_are_bounded()
    {
        await using var host = await TestNodes.StartAsync(o => o with { Watches = o.Watches with { MaxPerPeer = 2 } });
        using var dealer = new TestDealer(host.RouterEndpoint);
        TestDealer.Expect<WatchEvent>(dealer.Request(new Watch()));
        TestDealer.Expect<WatchEvent>(dealer.Request(new Watch()));

        var third = TestDealer.ExpectError(dealer.Request(new Watch()));

        Assert.That((third.Code, third.Details["reason"], third.Details["limit"]), Is.EqualTo((ErrorCodes.Unavailable, "watches", "2")));
    }

    [Test]
    public async Task A_watch_whose_client_stops_granting_credit_expires()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000));
        await using var host = await TestNodes.StartAsync(o => o with { Watches = o.Watches with { IdleTimeout = TimeSpan.FromSeconds(5) } }, time);
        using var watch = RawWatcher.Open(host.RouterEndpoint, null, new Watch { Credit = 0 });

        time.Advance(TimeSpan.FromSeconds(6)); // heartbeats (every 50 ms of fake time) find the watch silent

        var ended = watch.Next();
        Assert.That((ended.Kind, ended.Code), Is.EqualTo((WatchEventKinds.Ended, ErrorCodes.WatchExpired)), ended.Message);
    }

    public delegate void BodyWriter(ref MessagePackWriter writer);

    private static byte[] Envelope(string messageType, BodyWriter body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(5);
        writer.Write("protocolVersion");
        writer.Write(ProtocolVersion.Current);
        writer.Write("messageType");
        writer.Write(messageType);
        writer.Write("requestId");
        writer.Write("r-bad");
        writer.Write("clientId");
        writer.Write("c-bad");
        writer.Write("body");
        body(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public static IEnumerable<TestCaseData> MalformedWatchCases()
    {
        TestCaseData Case(string name, string type, BodyWriter body, string code, string field) =>
            new TestCaseData(type, body, code, field).SetArgDisplayNames(name);
        yield return Case("prefix is a number", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("prefix"); w.Write(7); }, ErrorCodes.Malformed, "body.prefix");
        yield return Case("credit is a string", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("credit"); w.Write("ten"); }, ErrorCodes.Malformed, "body.credit");
        yield return Case("startSequence is a string", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("startSequence"); w.Write("1"); }, ErrorCodes.Malformed, "body.startSequence");
        yield return Case("body is nil", nameof(Watch), (ref MessagePackWriter w) => w.WriteNil(), ErrorCodes.Malformed, "body");
        yield return Case("prefix outside registry.", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("prefix"); w.Write("orders."); }, ErrorCodes.InvalidArgument, "prefix");
        yield return Case("prefix too long", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("prefix"); w.Write("registry." + new string('x', 300)); }, ErrorCodes.InvalidArgument, "prefix");
        yield return Case("negative credit", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("credit"); w.Write(-1); }, ErrorCodes.InvalidArgument, "credit");
        yield return Case("credit over the cap", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("credit"); w.Write(10_001); }, ErrorCodes.InvalidArgument, "credit");
        yield return Case("negative startSequence", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("startSequence"); w.Write(-5); }, ErrorCodes.InvalidArgument, "startSequence");
        yield return Case("zero startSequence", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("startSequence"); w.Write(0); }, ErrorCodes.InvalidArgument, "startSequence");
        yield return Case("startSequence in the future", nameof(Watch), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("startSequence"); w.Write(1_000_000); }, ErrorCodes.InvalidArgument, "startSequence");
        yield return Case("credit without watchId", nameof(WatchCredit), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("credit"); w.Write(1); }, ErrorCodes.Malformed, "body.watchId");
        yield return Case("credit with empty watchId", nameof(WatchCredit), (ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("watchId"); w.Write(""); w.Write("credit"); w.Write(1); }, ErrorCodes.InvalidArgument, "watchId");
        yield return Case("credit of a negative amount", nameof(WatchCredit), (ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("watchId"); w.Write("w"); w.Write("credit"); w.Write(-3); }, ErrorCodes.InvalidArgument, "credit");
        yield return Case("cancel with a numeric watchId", nameof(WatchCancel), (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("watchId"); w.Write(12); }, ErrorCodes.Malformed, "body.watchId");
    }

    [TestCaseSource(nameof(MalformedWatchCases))]
    public async Task A_malformed_watch_request_gets_its_documented_error_and_opens_nothing(string type, BodyWriter body, string code, string field)
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);

        dealer.SendFrames(Envelope(type, body));
        var reply = dealer.Receive();
        var error = TestDealer.ExpectError(reply);

        Assert.Multiple(() =>
        {
            Assert.That((error.Code, error.Details.GetValueOrDefault("field")), Is.EqualTo((code, field)), error.Message);
            Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("r-bad", "c-bad")), "the error answers the request");
        });
        Assert.That(await host.InvokeAsync(_ => host.Watches!.Count), Is.Zero, "a refused request opened a watch");
        TestDealer.Expect<RegistrySnapshot>(dealer.Request(new SnapshotRequest())); // the registry still answers
    }
}
