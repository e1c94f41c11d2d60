using Microsoft.Extensions.Time.Testing;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>
/// A lease set keeps its own deadline for each lease, on the client's clock: the TTL counted from when the last
/// renewal that got through was sent. A fake clock drives client and registry, so "the TTL passed" is exact.
/// </summary>
public class LocalLeaseDeadlineTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A registry and a client on one fake clock, and the lease sets the test takes. Disposing first moves the clock
    /// well past every TTL and request timeout, so that cleanup after a failed assertion cannot wait on a clock that
    /// no longer moves (a release to a stopped registry would).
    /// </summary>
    private sealed class FakeClockRig : IAsyncDisposable
    {
        private readonly List<PortLeaseSet> _sets = [];

        private FakeClockRig(FakeTimeProvider time, TestRegistry registry, RegistryClient client) =>
            (Time, Registry, Client) = (time, registry, client);

        public FakeTimeProvider Time { get; }

        public TestRegistry Registry { get; }

        public RegistryClient Client { get; }

        /// <summary>
        /// Heartbeats would need the clock to move, so the client promises the longest interval the protocol allows.
        /// It does not depart on dispose: a departure to a stopped registry would wait for a timeout on the fake clock.
        /// </summary>
        public static async Task<FakeClockRig> StartAsync(Func<RegistryClientOptions, RegistryClientOptions>? client = null)
        {
            var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
            var registry = await TestRegistry.StartAsync(timeProvider: time);
            var options = registry.ClientOptions() with { TimeProvider = time, HeartbeatInterval = TimeSpan.FromMinutes(10), DepartOnDispose = false };
            return new FakeClockRig(time, registry, await RegistryClient.ConnectAsync((client ?? (o => o))(options)));
        }

        public async Task<PortLeaseSet> LeaseAsync(int count, LeaseRequestOptions options)
        {
            var set = await Client.LeasePortsAsync(count, options);
            _sets.Add(set);
            return set;
        }

        public async ValueTask DisposeAsync()
        {
            Time.Advance(TimeSpan.FromMinutes(5));
            foreach (var set in _sets) await set.DisposeAsync();
            await Client.DisposeAsync();
            await Registry.DisposeAsync();
        }
    }

    /// <summary>Moves the clock to the next renewal round and waits for <paramref name="renewed"/> to be released.</summary>
    private static async Task RenewOnceAsync(PortLeaseSet leases, FakeTimeProvider time, SemaphoreSlim renewed, string what)
    {
        // Move the clock only once the round's timer is set, or the timer would start after the move.
        var due = await leases.RenewalSchedule.ReadAsync().AsTask().Within($"{what} to be scheduled");
        time.Advance(due - time.GetUtcNow());
        Assert.That(await renewed.WaitAsync(Waits.Default), Is.True, $"{what} did not happen");
    }

    [Test]
    public async Task A_lease_runs_out_a_ttl_after_its_last_renewal_was_sent_when_the_registry_is_unreachable()
    {
        await using var rig = await FakeClockRig.StartAsync();
        var time = rig.Time;
        var leases = await rig.LeaseAsync(1, new LeaseRequestOptions { Ttl = Ttl });
        var port = leases.Ports[0];
        var renewed = new SemaphoreSlim(0);
        leases.LeaseRenewed += (_, _) => renewed.Release();
        var lost = new TaskCompletionSource<PortLeaseEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        leases.LeaseLost += (_, e) => lost.TrySetResult(e);
        // The renewal's reply comes back half a second after it was sent: the deadline must count from the sending.
        var delayed = 0;
        var replyDelay = TimeSpan.FromMilliseconds(500);
        rig.Client.ReplyFilter = reply =>
        {
            if (reply.MessageType == MessageTypes.Of<PortLease>() && Interlocked.Exchange(ref delayed, 1) == 0) time.Advance(replyDelay);
            return true;
        };

        var renewalSent = time.GetUtcNow() + Ttl / 3; // the first round is due a third of the TTL after the grant
        await RenewOnceAsync(leases, time, renewed, "the first renewal");
        Assert.That(time.GetUtcNow(), Is.EqualTo(renewalSent + replyDelay), "the renewal's reply should have come back late");
        await rig.Registry.DisposeAsync();

        time.Advance(renewalSent + Ttl - TimeSpan.FromMilliseconds(1) - time.GetUtcNow());
        Assert.That(leases.Ports, Is.EqualTo(new[] { port }), "the lease was lost before its TTL had passed since the renewal was sent");
        Assert.That(leases.HasLostLeases, Is.False);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(leases.HasLostLeases, Is.True,
            "the lease should be lost exactly a TTL after the last successful renewal was sent (not after its reply came), the registry being unreachable");
        var report = await lost.Task.Within("the LeaseLost event");
        Assert.That(report.Lease.Port, Is.EqualTo(port));
        Assert.That(report.Reason, Does.Contain("ran out on this client's clock"));
    }

    [Test]
    public async Task A_lease_never_renewed_runs_out_a_ttl_after_it_was_requested()
    {
        await using var rig = await FakeClockRig.StartAsync();
        var time = rig.Time;
        var requested = time.GetUtcNow();
        var leases = await rig.LeaseAsync(1, new LeaseRequestOptions { Ttl = Ttl });
        await rig.Registry.DisposeAsync();

        time.Advance(requested + Ttl - TimeSpan.FromMilliseconds(1) - time.GetUtcNow());
        Assert.That(leases.HasLostLeases, Is.False, "the lease was lost before its TTL had passed since it was requested");
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.That(leases.HasLostLeases, Is.True, "the lease should be lost a TTL after the request was sent, renewals having failed");
    }

    [Test]
    public async Task The_lost_token_of_a_port_fires_when_its_lease_runs_out()
    {
        await using var rig = await FakeClockRig.StartAsync();
        var leases = await rig.LeaseAsync(1, new LeaseRequestOptions { Ttl = Ttl });
        var port = leases.Ports[0];
        var token = leases.GetLostToken(port);
        var guardStopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = token.Register(() => guardStopped.TrySetResult());
        await rig.Registry.DisposeAsync();
        Assert.That(token.IsCancellationRequested, Is.False, "the token fired while the lease was still within its TTL");

        rig.Time.Advance(Ttl);

        await guardStopped.Task.Within("the callback registered on the lost token");
        Assert.That(leases.GetLostToken(port).IsCancellationRequested, Is.True, "a token asked for after the loss should be cancelled already");
    }

    [Test]
    public async Task A_port_whose_lease_ran_out_leaves_ports_while_the_others_stay()
    {
        await using var rig = await FakeClockRig.StartAsync();
        var leases = await rig.LeaseAsync(2, new LeaseRequestOptions { Ttl = Ttl });
        var (stuck, healthy) = (leases.Leases[0], leases.Leases[1]);
        // The stuck lease's renewals reach the registry, but no reply comes back: the client cannot know it was renewed.
        rig.Client.ReplyFilter = reply => !(reply.MessageType == MessageTypes.Of<PortLease>() && reply.BodyAs<PortLease>().LeaseId == stuck.LeaseId);
        var renewed = new SemaphoreSlim(0);
        leases.LeaseRenewed += (_, e) =>
        {
            if (e.Lease.Port == healthy.Port) renewed.Release();
        };

        // Three rounds, a TTL in all: the last one is due when the stuck lease's deadline passes.
        for (var round = 1; round <= 3; round++)
            await RenewOnceAsync(leases, rig.Time, renewed, $"renewal round {round} of the healthy lease");

        Assert.That(leases.Ports, Is.EqualTo(new[] { healthy.Port }), "only the port still held should be listed");
        Assert.That(leases.Leases.Select(l => l.LeaseId), Is.EqualTo(new[] { healthy.LeaseId }));
        Assert.That(leases.LostLeases.Select(l => l.Port), Is.EqualTo(new[] { stuck.Port }));
        Assert.That(leases.GetLostToken(stuck.Port).IsCancellationRequested, Is.True, "the lost port's token should have fired");
        Assert.That(leases.GetLostToken(healthy.Port).IsCancellationRequested, Is.False, "the held port's token must not fire");
    }

    [Test]
    public async Task Disposing_a_set_stops_waiting_on_an_unreachable_registry_once_the_lease_runs_out()
    {
        // A request timeout far beyond the TTL: only the lease's own deadline can end the release.
        await using var rig = await FakeClockRig.StartAsync(o => o with { RequestTimeout = TimeSpan.FromSeconds(25), MaxAttempts = 2 });
        var time = rig.Time;
        var requested = time.GetUtcNow();
        var leases = await rig.Client.LeasePortAsync(new LeaseRequestOptions { Ttl = Ttl, RenewAutomatically = false });
        await rig.Registry.DisposeAsync();

        var disposing = leases.DisposeAsync().AsTask();
        time.Advance(requested + Ttl - time.GetUtcNow());

        await disposing.Within("the dispose to give up the release at the lease's deadline");
        Assert.That(leases.HasLostLeases, Is.False, "a lease released by dispose is not reported lost");
    }

    [Test]
    public async Task Disposing_a_set_fires_the_lost_tokens_of_its_ports()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var leases = await client.LeasePortsAsync(2);
        var tokens = leases.Ports.Select(leases.GetLostToken).ToArray();

        await leases.DisposeAsync();

        Assert.That(tokens.Select(t => t.IsCancellationRequested), Is.All.True, "whatever guards a released port must be told to stop");
    }

    [Test]
    public async Task A_conflict_report_fires_the_lost_token_of_the_conflicted_port_only()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortsAsync(2);
        var (conflicted, kept) = (leases.Ports[0], leases.Ports[1]);

        var replacement = await leases.ReportConflictAsync(conflicted, "address in use");

        Assert.That(leases.GetLostToken(conflicted).IsCancellationRequested, Is.True, "the conflicted port is no longer held");
        Assert.That(leases.GetLostToken(replacement.Port).IsCancellationRequested, Is.False, "the replacement port is held");
        Assert.That(leases.GetLostToken(kept).IsCancellationRequested, Is.False, "the other port is still held");
        Assert.That(leases.HasLostLeases, Is.False, "a conflict swaps the port; it does not lose a lease");
    }

    [Test]
    public async Task A_renewal_answered_after_the_lease_ran_out_here_is_released_at_the_registry()
    {
        // A request timeout longer than the TTL, so the late reply is taken as the renewal's answer, not a timeout.
        await using var rig = await FakeClockRig.StartAsync(o => o with { RequestTimeout = Ttl * 2 });
        var time = rig.Time;
        var leases = await rig.LeaseAsync(1, new LeaseRequestOptions { Ttl = Ttl });
        var leaseId = leases.Leases[0].LeaseId;
        var lost = new TaskCompletionSource<PortLeaseEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        leases.LeaseLost += (_, e) => lost.TrySetResult(e);
        // The first renewal is sent a third of the TTL after the grant and renewed by the registry (a TTL from then);
        // its reply reaches the client only after the grant's TTL has passed here, so the client has given the lease up.
        var late = Ttl * 5 / 6;
        var delayed = 0;
        var released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Client.ReplyFilter = reply =>
        {
            if (reply.MessageType == MessageTypes.Of<PortLease>() && Interlocked.Exchange(ref delayed, 1) == 0) time.Advance(late);
            // The only request acknowledged with an Ack from here on is a release.
            if (reply.MessageType == MessageTypes.Of<Ack>()) released.TrySetResult();
            return true;
        };

        var due = await leases.RenewalSchedule.ReadAsync().AsTask().Within("the first renewal to be scheduled");
        time.Advance(due - time.GetUtcNow());
        await lost.Task.Within("the lease to run out on the client's clock while its renewal's reply was late");
        await released.Task.Within("the client to release the lease the registry renewed after the client had given it up");

        var held = await rig.Client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] });
        Assert.That(held.Leases!.Select(l => l.LeaseId), Does.Not.Contain(leaseId),
            "the registry renewed a lease the client had already given up; the client should have released it rather than leave the port held for a TTL with nobody guarding it");
    }

    [Test]
    public async Task Asking_for_the_lost_token_of_a_port_outside_the_set_is_an_argument_error()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });

        Assert.Throws<ArgumentException>(() => leases.GetLostToken(leases.Ports[0] == 1 ? 2 : 1));
    }
}
