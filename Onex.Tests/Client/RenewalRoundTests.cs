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
}
