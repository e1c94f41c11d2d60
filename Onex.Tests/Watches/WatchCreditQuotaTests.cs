using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.Tests.Auth;
using Onex.Tests.Registry;

namespace Onex.Tests.Watches;

/// <summary>
/// <c>WatchCredit</c> is the flow control of a stream the registry already accepted, not a new request: it does not
/// count against the tenant's <c>requestsPerSecond</c>, up to a bound per connection (PROTOCOL.md 16.7).
/// </summary>
public class WatchCreditQuotaTests
{
    // A fake clock that is never advanced: the tenant's token bucket never refills during a test, so a request that
    // was charged shows as QUOTA_EXCEEDED.
    private static FakeTimeProvider FrozenClock() => new(DateTimeOffset.UnixEpoch.AddDays(20_000));

    private static void SpendTheRestOfTheQuota(TestDealer dealer)
    {
        for (var i = 0; i < 10; i++)
        {
            var reply = dealer.Request(new IntrospectionRequest { Include = [IntrospectionSections.Stats] });
            if (reply.MessageType == MessageTypes.Of<Error>())
            {
                Assert.That(TestDealer.ExpectError(reply).Code, Is.EqualTo(ErrorCodes.QuotaExceeded), "spending the quota");
                return;
            }
        }
        Assert.Fail("the tenant's requestsPerSecond quota was never reached");
    }

    // The next change on the stream; a heartbeat the registry may have queued at its start takes a credit, granted again.
    // Next fails the test when a WatchCredit is answered with anything but Ack (QUOTA_EXCEEDED above all).
    private static RegistryChange NextChange(RawWatcher watch)
    {
        while (true)
        {
            var evt = watch.Next();
            if (evt.Change is { } change) return change;
            Assert.That(evt.Kind, Is.EqualTo(WatchEventKinds.Heartbeat), $"unexpected {evt.Kind}: {evt.Code} {evt.Message}");
            watch.Grant(1);
        }
    }

    [Test]
    public async Task A_watcher_at_its_request_quota_keeps_streaming()
    {
        using var files = new AuthTestFiles(new TenantQuotas { RequestsPerSecond = 3 });
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path }, FrozenClock());
        using var watch = RawWatcher.Open(host.RouterEndpoint, files.ReaderA, new Watch { Credit = 0 });
        SpendTheRestOfTheQuota(watch.Dealer);
        // The admin (tenant ops, no quota) makes changes in tenant a, one stream message each.
        using var admin = new TestDealer(host.RouterEndpoint) { Token = files.Admin, Tenant = "a" };

        var streamed = new List<string>();
        for (var i = 1; i <= 5; i++)
        {
            watch.Grant(1);
            admin.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = $"a-worker-{i}" });
            streamed.Add(NextChange(watch).Key);
        }

        var after = TestDealer.ExpectError(watch.Dealer.Request(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }));
        Assert.Multiple(() =>
        {
            Assert.That(streamed, Is.EqualTo(Enumerable.Range(1, 5).Select(i => $"a-worker-{i}")), "every change streamed, one credit at a time");
            Assert.That((after.Code, after.Details["quota"]), Is.EqualTo((ErrorCodes.QuotaExceeded, "requestsPerSecond")),
                "the tenant was at its quota throughout: an ordinary request is still refused");
        });
    }

    [Test]
    public async Task Credit_beyond_the_connections_allowance_counts_as_a_request()
    {
        using var files = new AuthTestFiles(new TenantQuotas { RequestsPerSecond = 3 });
        await using var host = await TestNodes.StartAsync(
            o => o with { AuthFile = files.Path, Watches = o.Watches with { UnchargedCreditsPerSecond = 4 } }, FrozenClock());
        using var watch = RawWatcher.Open(host.RouterEndpoint, files.ReaderA, new Watch { Credit = 0 });
        SpendTheRestOfTheQuota(watch.Dealer);

        var replies = Enumerable.Range(0, 5).Select(_ => watch.Dealer.Request(new WatchCredit { WatchId = watch.WatchId, Credit = 0 })).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(replies.Take(4).Select(r => r.MessageType), Is.All.EqualTo(MessageTypes.Of<Ack>()), "credit within the allowance is free");
            var refused = TestDealer.ExpectError(replies[4]);
            Assert.That((refused.Code, refused.Details["quota"]), Is.EqualTo((ErrorCodes.QuotaExceeded, "requestsPerSecond")),
                "past the allowance, a WatchCredit is charged like any request");
        });
    }

    [Test]
    public async Task Credit_for_a_watch_the_connection_does_not_hold_counts_as_a_request()
    {
        using var files = new AuthTestFiles(new TenantQuotas { RequestsPerSecond = 3 });
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path }, FrozenClock());
        using var watch = RawWatcher.Open(host.RouterEndpoint, files.ReaderA, new Watch { Credit = 0 });
        using var other = new TestDealer(host.RouterEndpoint) { Token = files.ReaderA };
        SpendTheRestOfTheQuota(other);

        var refused = TestDealer.ExpectError(other.Request(new WatchCredit { WatchId = watch.WatchId, Credit = 1 }));

        Assert.That(refused.Code, Is.EqualTo(ErrorCodes.QuotaExceeded), "another connection's watch id buys no free requests");
    }
}
