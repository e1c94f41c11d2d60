using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;

namespace Onex.Tests.Registry;

public class LeaseTests
{
    private static RegistryNodeOptions WithLeases(Func<LeaseOptions, LeaseOptions> change) =>
        RegistryNodeOptions.Default with { Leases = change(LeaseOptions.Default) };

    [Test]
    public void Requested_ttl_below_the_minimum_is_raised_to_it()
    {
        using var h = new RegistryHarness();
        Assert.That(h.Lease(ttlMs: 10).TtlMs, Is.EqualTo(1000), "a 10 ms request should be raised to the 1 s minimum");
    }

    [Test]
    public void Requested_ttl_above_the_maximum_is_lowered_to_it()
    {
        using var h = new RegistryHarness();
        Assert.That(h.Lease(ttlMs: (long)TimeSpan.FromDays(1).TotalMilliseconds).TtlMs, Is.EqualTo(3_600_000));
    }

    [Test]
    public void A_request_without_ttl_gets_the_default()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease();
        Assert.That(lease.TtlMs, Is.EqualTo(30_000));
        Assert.That(lease.ExpiresAt, Is.EqualTo(lease.GrantedAt + 30_000));
    }

    [Test]
    public void A_non_positive_ttl_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", TtlMs = 0 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("ttlMs"));
    }

    [Test]
    public void A_lease_carries_id_host_holder_protocol_token_and_purpose()
    {
        using var h = new RegistryHarness();
        var lease = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", Protocol = PortProtocols.Tcp, Purpose = "test-x" })).Leases[0];
        Assert.That(lease.LeaseId, Does.StartWith("L-"));
        Assert.That(lease.Host, Is.EqualTo("127.0.0.1"));
        Assert.That(lease.NodeId, Is.EqualTo("n1"));
        Assert.That(lease.Protocol, Is.EqualTo(PortProtocols.Tcp));
        Assert.That(lease.Purpose, Is.EqualTo("test-x"));
        Assert.That(lease.GrantedAt, Is.EqualTo(h.NowMs));
        Assert.That(lease.FencingToken, Is.GreaterThan(0));
    }

    [Test]
    public void A_lease_does_not_expire_before_its_ttl()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 5000);
        h.Time.Advance(TimeSpan.FromMilliseconds(4999));
        Assert.That(h.Registry.Leases.Leases.Select(l => l.LeaseId), Does.Contain(lease.LeaseId), "the lease vanished before its TTL");
        Assert.That(h.Sink.Changes.Select(c => c.ChangeType), Does.Not.Contain(ChangeTypes.LeaseExpired));
    }

    [Test]
    public void The_reaper_expires_a_lease_once_its_ttl_has_passed_and_broadcasts_it()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 5000);
        h.Time.Advance(TimeSpan.FromMilliseconds(5000));
        Assert.That(h.Registry.Leases.Count, Is.Zero, "the reaper did not expire the lease");
        var expired = h.Sink.Changes.Last();
        Assert.That(expired.ChangeType, Is.EqualTo(ChangeTypes.LeaseExpired));
        Assert.That(expired.Key, Is.EqualTo(lease.LeaseId));
        Assert.That(expired.OldValue?.Lease?.Port, Is.EqualTo(lease.Port));
        Assert.That(expired.NewValue, Is.Null);
    }

    [Test]
    public void Renewal_extends_expiry_from_now_and_keeps_the_fencing_token()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 5000);
        h.Time.Advance(TimeSpan.FromSeconds(4));
        var renewed = h.Do(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        Assert.That(renewed.ExpiresAt, Is.EqualTo(h.NowMs + 5000));
        Assert.That(renewed.FencingToken, Is.EqualTo(lease.FencingToken), "renewal must not change the token");
        h.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.That(h.Registry.Leases.Count, Is.EqualTo(1), "the renewed lease expired at its old expiry time");
        Assert.That(h.Sink.Changes.Select(c => c.ChangeType), Does.Contain(ChangeTypes.LeaseRenewed));
    }

    [Test]
    public void Renewal_with_a_stale_fencing_token_is_fenced()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease();
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken - 1 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.Fenced));
        Assert.That(ex.Details["fencingToken"], Is.EqualTo((lease.FencingToken - 1).ToString()), "details name the token presented");
    }

    [Test]
    public void Release_by_another_node_is_not_owner()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease("n1");
        var ex = h.Fails(r => r.Handle(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n2", FencingToken = lease.FencingToken }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotOwner));
        Assert.That((ex.Details["nodeId"], ex.Details["owner"]), Is.EqualTo(("n2", "n1")));
        Assert.That(h.Registry.Leases.Count, Is.EqualTo(1), "a rejected release changed state");
    }

    [Test]
    public void Renewal_of_an_unknown_lease_is_lease_not_found()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = "L-nope", NodeId = "n1", FencingToken = 1 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.LeaseNotFound));
    }

    [Test]
    public void Renewal_of_an_expired_lease_is_lease_expired()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 2000);
        h.Time.Advance(TimeSpan.FromSeconds(3));
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.LeaseExpired));
        Assert.That(ex.Details["expiredAt"], Is.EqualTo(lease.ExpiresAt.ToString()));
    }

    [Test]
    public void An_expired_lease_id_is_forgotten_after_five_minutes()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 2000);
        h.Time.Advance(TimeSpan.FromSeconds(2));
        h.Time.Advance(TimeSpan.FromMinutes(5));
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.LeaseNotFound));
    }

    [Test]
    public void A_renewal_at_expiry_time_fails_even_before_the_reaper_ran()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease(ttlMs: 2000);
        // Stopping the timers lets the clock pass expiry without the reaper, as when it runs late.
        h.Registry.Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(2));
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n2", FencingToken = 0 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.LeaseExpired), "expiry is checked before ownership and token");
        Assert.That(h.Sink.Changes.Last().ChangeType, Is.EqualTo(ChangeTypes.LeaseExpired), "the lease is reaped then");
    }

    [Test]
    public void Renewal_of_a_released_lease_is_lease_not_found()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease();
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        var ex = h.Fails(r => r.Handle(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.LeaseNotFound));
    }

    [Test]
    public void A_released_port_rests_in_quarantine_then_joins_the_back_of_the_queue()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 3));
        var first = h.Lease();
        Assert.That(first.Port, Is.EqualTo(20000));
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = first.LeaseId, NodeId = "n1", FencingToken = first.FencingToken }));
        Assert.That(h.Registry.Leases.Pool.QuarantinedCount, Is.EqualTo(1));
        Assert.That(h.Sink.Changes.Last().ChangeType, Is.EqualTo(ChangeTypes.LeaseReleased));

        h.Time.Advance(TimeSpan.FromSeconds(30));
        var ports = new[] { h.Lease().Port, h.Lease().Port, h.Lease().Port };
        Assert.That(ports, Is.EqualTo(new[] { 20001, 20002, 20000 }), "the released port should be reused last");
    }

    [Test]
    public void A_quarantined_port_is_not_granted_before_its_rest_is_over()
    {
        using var h = new RegistryHarness(pool: [20000]);
        var lease = h.Lease();
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        h.Time.Advance(TimeSpan.FromSeconds(29));
        Assert.That(h.Fails(r => r.Handle(new PortRequest { NodeId = "n1" })).Code, Is.EqualTo(ErrorCodes.PortExhausted));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(h.Lease().Port, Is.EqualTo(20000));
    }

    [Test]
    public void A_conflict_quarantines_the_port_and_grants_a_replacement_with_a_new_token()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 3));
        var lease = h.Lease();
        var before = h.Sink.Changes.Count;
        var replacement = h.Do(r => r.Handle(new PortConflict { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken, Reason = "EADDRINUSE" }));

        Assert.That(replacement.Port, Is.Not.EqualTo(lease.Port));
        Assert.That(replacement.NodeId, Is.EqualTo("n1"));
        Assert.That(replacement.FencingToken, Is.GreaterThan(lease.FencingToken));
        Assert.That(h.Sink.TypesSince(before), Is.EqualTo(new[] { ChangeTypes.LeaseConflicted, ChangeTypes.LeaseGranted }));
        Assert.That(h.Registry.Leases.Pool.IsFree(lease.Port), Is.False, "the conflicted port should rest in quarantine");
        Assert.That(h.Registry.Leases.Leases.Select(l => l.LeaseId), Is.EqualTo(new[] { replacement.LeaseId }));
    }

    [Test]
    public void A_conflict_with_no_free_port_left_leaves_the_lease_as_it_was()
    {
        using var h = new RegistryHarness(pool: [20000]);
        var lease = h.Lease();
        var ex = h.Fails(r => r.Handle(new PortConflict { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.PortExhausted));
        Assert.That(h.Registry.Leases.Leases.Single(), Is.EqualTo(lease));
    }

    [Test]
    public void A_multi_port_request_is_all_or_nothing()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 3));
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", Count = 4 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.PortExhausted));
        Assert.That(ex.Details["free"], Is.EqualTo("3"));
        Assert.That(h.Registry.Leases.Count, Is.Zero, "a failed multi-port request left leases behind");
        Assert.That(h.Sink.Changes, Is.Empty);

        var grant = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", Count = 3 }));
        Assert.That(grant.Leases.Select(l => l.Port), Is.EqualTo(new[] { 20000, 20001, 20002 }), "the queue order changed after the failed request");
    }

    [Test]
    public void Asking_for_more_ports_than_allowed_per_request_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", Count = 65 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("count"));
    }

    [Test]
    public void An_exhausted_pool_answers_port_exhausted()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 2));
        h.Lease();
        h.Lease();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.PortExhausted));
        Assert.That(ex.Details["free"], Is.EqualTo("0"));
    }

    [Test]
    public void A_free_preferred_port_is_granted()
    {
        using var h = new RegistryHarness();
        Assert.That(h.Lease(preferredPort: 20007).Port, Is.EqualTo(20007));
    }

    [Test]
    public void A_leased_preferred_port_yields_another_port()
    {
        using var h = new RegistryHarness();
        var taken = h.Lease(preferredPort: 20007);
        var other = h.Lease(preferredPort: 20007);
        Assert.That(other.Port, Is.Not.EqualTo(taken.Port));
    }

    [Test]
    public void A_preferred_port_outside_the_pool_yields_another_port()
    {
        using var h = new RegistryHarness();
        Assert.That(h.Lease(preferredPort: 80).Port, Is.EqualTo(20000));
    }

    [Test]
    public void A_preferred_port_that_is_not_a_port_number_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 70000 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("preferredPort"));
    }

    [Test]
    public void A_reclaim_grants_a_quarantined_port_without_the_free_check()
    {
        using var h = new RegistryHarness();
        var old = h.Lease(preferredPort: 20005);
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = old.LeaseId, NodeId = "n1", FencingToken = old.FencingToken }));
        h.Availability.Busy.Add(20005); // its holder still has it bound
        var checks = h.Availability.Checks;

        var lease = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 20005, Reclaim = true })).Leases.Single();

        Assert.That(lease.Port, Is.EqualTo(20005));
        Assert.That(h.Availability.Checks, Is.EqualTo(checks), "a reclaim must not run the free check");
    }

    [Test]
    public void A_reclaim_of_a_leased_port_is_port_unavailable()
    {
        using var h = new RegistryHarness();
        h.Lease(preferredPort: 20005);
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n2", PreferredPort = 20005, Reclaim = true }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.PortUnavailable));
        Assert.That(ex.Details["reason"], Is.EqualTo("leased"));
    }

    [Test]
    public void A_reclaim_repeated_by_the_holder_returns_its_lease_renewed_instead_of_refusing_it()
    {
        using var h = new RegistryHarness();
        var first = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 20005, Reclaim = true, TtlMs = 10_000 })).Leases.Single();
        h.Time.Advance(TimeSpan.FromSeconds(4));

        // The reply was lost and the re-assertion runs again under new ids: the holder keeps its lease.
        var again = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 20005, Reclaim = true, TtlMs = 10_000 })).Leases.Single();

        Assert.That(again.LeaseId, Is.EqualTo(first.LeaseId));
        Assert.That(again.FencingToken, Is.EqualTo(first.FencingToken));
        Assert.That(again.ExpiresAt, Is.EqualTo(h.NowMs + 10_000), "the repeated reclaim renews the lease");
        Assert.That(h.Sink.Changes[^1].ChangeType, Is.EqualTo(ChangeTypes.LeaseRenewed));
    }

    [Test]
    public void The_free_check_covers_tcp_and_udp_whatever_the_request_names()
    {
        using var h = new RegistryHarness(options: WithLeases(l => l with { VerifiedPortFreshness = TimeSpan.Zero }));
        h.Availability.Busy.Add(20000); // bound by someone, for some protocol

        var lease = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", Protocol = PortProtocols.Udp })).Leases.Single();

        Assert.That(lease.Port, Is.Not.EqualTo(20000));
        Assert.That(h.Availability.Protocols.Distinct(), Is.EqualTo(new[] { PortProtocols.Both }), "a udp request must check both protocols");
    }

    [Test]
    public void A_reclaim_of_a_port_outside_the_pool_is_port_unavailable()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 80, Reclaim = true }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.PortUnavailable));
        Assert.That(ex.Details["reason"], Is.EqualTo("notInPool"));
    }

    [Test]
    public void A_reclaim_without_a_preferred_port_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", Reclaim = true }));
        Assert.That(ex.Details["field"], Is.EqualTo("reclaim"));
    }

    [Test]
    public void A_port_failing_the_free_check_is_skipped_and_quarantined()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 3));
        h.Availability.Busy.Add(20000);
        Assert.That(h.Lease().Port, Is.EqualTo(20001));
        Assert.That(h.Registry.Leases.Pool.QuarantinedCount, Is.EqualTo(1), "the busy port should rest before it is tried again");
        h.Availability.Busy.Clear();
        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.That(new[] { h.Lease().Port, h.Lease().Port }, Is.EqualTo(new[] { 20002, 20000 }), "the busy port should come back at the back of the queue");
    }

    [Test]
    public void Released_leases_do_not_pile_up_in_the_expiry_queue_and_live_ones_still_expire_on_time()
    {
        using var h = new RegistryHarness(WithLeases(l => l with { Quarantine = TimeSpan.Zero }), pool: Enumerable.Range(20000, 10));
        var kept = h.Lease(ttlMs: 10_000);
        h.Time.Advance(TimeSpan.FromSeconds(5));
        h.Do(r => r.Handle(new LeaseRenewal { LeaseId = kept.LeaseId, NodeId = "n1", FencingToken = kept.FencingToken })); // now expires at 15 s

        for (var i = 0; i < 5000; i++)
        {
            var churn = h.Lease();
            h.Do(r => r.Handle(new LeaseRelease { LeaseId = churn.LeaseId, NodeId = "n1", FencingToken = churn.FencingToken }));
        }

        Assert.That(h.Registry.Leases.ExpiryEntries, Is.LessThanOrEqualTo(1025), "entries of released leases piled up in the expiry queue");
        h.Time.Advance(TimeSpan.FromMilliseconds(9_999));
        Assert.That(h.Sink.Changes.Where(c => c.ChangeType == ChangeTypes.LeaseExpired), Is.Empty, "the renewed lease expired before its TTL passed");
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(h.Sink.Changes.Where(c => c.ChangeType == ChangeTypes.LeaseExpired).Select(c => c.Key), Is.EqualTo(new[] { kept.LeaseId }));
    }

    [Test]
    public void Fencing_tokens_increase_with_every_grant()
    {
        using var h = new RegistryHarness();
        var tokens = Enumerable.Range(0, 5).Select(_ => h.Lease().FencingToken).ToList();
        Assert.That(tokens, Is.Ordered.Ascending);
        Assert.That(tokens.Distinct().Count(), Is.EqualTo(5));
    }

    [Test]
    public void An_unknown_protocol_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", Protocol = "sctp" }));
        Assert.That(ex.Details["field"], Is.EqualTo("protocol"));
    }
}
