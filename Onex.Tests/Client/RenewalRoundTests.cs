using Onex.Protocol;

namespace Onex.Tests.Client;

/// <summary>One lease's stuck renewal must not starve the renewals of the other leases in its set.</summary>
public class RenewalRoundTests
{
    [Test]
    public async Task A_renewal_that_gets_no_reply_does_not_hold_up_the_other_leases_of_the_set()
    {
        await using var registry = await TestRegistry.StartAsync();
        // A stuck renewal retries for at least 3 x 2.5 s, well past the other lease's 4 s TTL: a renewal round that
        // waited for it would let the healthy lease expire. Renewing every TTL/3, the healthy lease has 4 s for one
        // of three renewals to get through, which a loaded CI machine (parallel fixtures on 2 cores) needs.
        await using var client = await global::Onex.Transports.Registry.RegistryClient.ConnectAsync(
            registry.ClientOptions() with { RequestTimeout = TimeSpan.FromSeconds(2.5), MaxAttempts = 3 });
        await using var leases = await client.LeasePortsAsync(2, new() { Ttl = TimeSpan.FromSeconds(4) });
        var stuck = leases.Leases[0].LeaseId;
        var healthy = leases.Leases[1].Port;
        client.ReplyFilter = reply => !(reply.MessageType == MessageTypes.Of<PortLease>() && reply.BodyAs<PortLease>().LeaseId == stuck);
        const int wanted = 5;
        var renewals = 0;
        var renewedEnough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        leases.LeaseRenewed += (_, e) =>
        {
            if (e.Lease.Port == healthy && Interlocked.Increment(ref renewals) == wanted) renewedEnough.TrySetResult();
        };
        // The stuck lease itself may well be lost (its renewals never complete); the healthy one must not be.
        leases.LeaseLost += (_, e) =>
        {
            if (e.Lease.Port == healthy) lost.TrySetResult(e.Reason);
        };

        var first = await Task.WhenAny(renewedEnough.Task, lost.Task).Within($"{wanted} renewals of the healthy lease", TimeSpan.FromSeconds(20));

        Assert.That(first, Is.SameAs(renewedEnough.Task),
            $"the healthy lease was lost while another lease's renewal was stuck: {(lost.Task.IsCompleted ? lost.Task.Result : "")}");
    }

    [Test]
    public async Task A_renewal_that_got_no_answer_is_tried_again_before_the_next_round()
    {
        await using var registry = await TestRegistry.StartAsync();
        // TTL 9 s: rounds every 3 s. A renewal that gets no answer stays in flight for 3 x 1.2 s (plus backoff), so the
        // round at 6 s skips it and the next one is at the deadline: waiting for rounds would lose the lease. Tried
        // again at once, it gets through about 6.7 s after the grant, with the deadline still about 2.3 s away (room
        // for a loaded machine's slow reply; with 6 s and 1 s it was 0.9 s, too little under two busy loops).
        await using var client = await global::Onex.Transports.Registry.RegistryClient.ConnectAsync(
            registry.ClientOptions() with { RequestTimeout = TimeSpan.FromSeconds(1.2), MaxAttempts = 3 });
        await using var leases = await client.LeasePortsAsync(1, new() { Ttl = TimeSpan.FromSeconds(9) });
        var leaseId = leases.Leases[0].LeaseId;
        string? unanswered = null;
        // Every attempt of the first renewal goes unanswered (its retries share its request id); later ones pass.
        client.ReplyFilter = reply =>
            reply.MessageType != MessageTypes.Of<PortLease>() ||
            (Interlocked.CompareExchange(ref unanswered, reply.RequestId, null) ?? reply.RequestId) != reply.RequestId;
        var renewed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        leases.LeaseRenewed += (_, e) => renewed.TrySetResult();
        leases.LeaseLost += (_, e) => lost.TrySetResult(e.Reason);

        var first = await Task.WhenAny(renewed.Task, lost.Task).Within("a renewal after the unanswered one", TimeSpan.FromSeconds(20));

        Assert.That(unanswered, Is.Not.Null, "the first renewal's replies should have been dropped");
        Assert.That(first, Is.SameAs(renewed.Task), $"the lease was lost before a renewal got through: {(lost.Task.IsCompleted ? lost.Task.Result : "")}");
        Assert.That(leases.Leases.Single().LeaseId, Is.EqualTo(leaseId));
    }
}
