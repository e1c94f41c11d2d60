using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>Leasing, renewing, releasing and losing ports through a real registry node.</summary>
public class PortLeaseSetTests
{
    private static async Task<IReadOnlyList<PortLease>> LeasesOfAsync(RegistryClient client) =>
        (await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = client.NodeId })).Leases!;

    [Test]
    public async Task Leased_ports_are_held_by_the_client_node_in_the_registry()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        await using var leases = await client.LeasePortsAsync(3, new LeaseRequestOptions { Purpose = "three" });

        Assert.That(leases.Ports, Has.Count.EqualTo(3).And.Unique);
        var held = await LeasesOfAsync(client);
        Assert.That(held.Select(l => l.Port), Is.EquivalentTo(leases.Ports));
        Assert.That(held.Select(l => l.Purpose), Is.All.EqualTo("three"));
    }

    [Test]
    public async Task A_lease_set_renews_itself_past_its_ttl_on_the_real_clock()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        // Renewals every second: a lease survives scheduling stalls of a second or more while the suite runs in parallel.
        var ttl = TimeSpan.FromSeconds(3);
        var renewals = 0;
        var renewedEnough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Ttl = ttl });
        var granted = leases.Leases[0];
        leases.LeaseRenewed += (_, _) =>
        {
            if (Interlocked.Increment(ref renewals) == 4) renewedEnough.TrySetResult();
        };
        await renewedEnough.Task.Within("four renewals (more than one TTL)");

        var held = await LeasesOfAsync(client);
        Assert.That(held.Select(l => l.LeaseId), Is.EqualTo(new[] { granted.LeaseId }), "the lease should still be held after more than one TTL");
        Assert.That(held[0].ExpiresAt, Is.GreaterThan(granted.ExpiresAt), "renewals should have moved the expiry");
        Assert.That(leases.HasLostLeases, Is.False);
    }

    [Test]
    public async Task A_lease_set_renews_itself_past_its_ttl_on_a_fake_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using var registry = await TestRegistry.StartAsync(timeProvider: time);
        // Heartbeats would need the fake clock to move; promise the longest interval the protocol allows.
        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with { TimeProvider = time, HeartbeatInterval = TimeSpan.FromMinutes(10) });
        var ttl = TimeSpan.FromSeconds(3);
        var renewed = new SemaphoreSlim(0);

        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Ttl = ttl, RenewAutomatically = true });
        var granted = leases.Leases[0];
        leases.LeaseRenewed += (_, _) => renewed.Release();

        for (var round = 0; round < 5; round++)
        {
            // Move the clock only once the round's timer is set, or the timer would start after the move.
            var due = await leases.RenewalSchedule.ReadAsync().AsTask().Within($"renewal round {round} to be scheduled");
            time.Advance(due - time.GetUtcNow());
            Assert.That(await renewed.WaitAsync(Waits.Default), Is.True, $"renewal {round} did not happen after a third of the TTL passed");
        }

        var held = await LeasesOfAsync(client);
        Assert.That(time.GetUtcNow().ToUnixTimeMilliseconds() - granted.GrantedAt, Is.GreaterThan((long)ttl.TotalMilliseconds),
            "the test should have moved the clock past the original TTL");
        Assert.That(held.Select(l => l.LeaseId), Is.EqualTo(new[] { granted.LeaseId }), "the reaper must not expire a renewed lease");
        Assert.That(held[0].ExpiresAt, Is.EqualTo(time.GetUtcNow().ToUnixTimeMilliseconds() + (long)ttl.TotalMilliseconds));
    }

    [Test]
    public async Task Disposing_a_lease_set_releases_its_ports_and_broadcasts_it()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var events = client.WatchEvents(ChangeTypes.TopicOf("lease."));
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        var leases = await client.LeasePortsAsync(2);
        var ids = leases.Leases.Select(l => l.LeaseId).ToHashSet();
        await leases.DisposeAsync();

        var released = new HashSet<string>();
        await events.UntilAsync(e =>
        {
            if (e.Change is { ChangeType: ChangeTypes.LeaseReleased } change) released.Add(change.Key);
            return released.SetEquals(ids);
        }, "lease.released for both leases");
        Assert.That(await LeasesOfAsync(client), Is.Empty, "introspection should list no lease after the release");
    }

    [Test]
    public async Task Disposing_the_client_releases_leases_still_open()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await registry.ConnectAsync();
        var client = await registry.ConnectAsync();
        _ = await client.LeasePortsAsync(2);

        await client.DisposeAsync();

        var leases = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = client.NodeId });
        Assert.That(leases.Leases, Is.Empty);
    }

    [Test]
    public async Task A_lease_released_behind_the_holders_back_is_reported_lost()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var operatorClient = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        var lost = new TaskCompletionSource<PortLeaseEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);

        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Ttl = TimeSpan.FromMilliseconds(1500) });
        var port = leases.Ports[0];
        leases.LeaseLost += (_, args) => lost.TrySetResult(args);
        await operatorClient.ReleaseLeaseAsync((await LeasesOfAsync(client))[0]);

        var report = await lost.Task.Within("the LeaseLost event");
        Assert.That(report.Lease.Port, Is.EqualTo(port));
        Assert.That(report.Reason, Does.Contain("no longer knows"));
        Assert.That(leases.HasLostLeases, Is.True);
        Assert.That(leases.LostLeases.Select(l => l.Port), Is.EqualTo(new[] { port }));
        Assert.That(leases.Ports, Is.Empty, "a lost port must leave Ports");
        Assert.That(leases.GetLostToken(port).IsCancellationRequested, Is.True, "the port's lost token should have fired");
    }

    [Test]
    public async Task A_conflict_report_replaces_the_port_in_the_set()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortsAsync(2);
        var conflicted = leases.Ports[0];

        var replacement = await leases.ReportConflictAsync(conflicted, "address in use");

        Assert.That(replacement.Port, Is.Not.EqualTo(conflicted));
        Assert.That(leases.Ports, Is.EqualTo(new[] { replacement.Port, leases.Ports[1] }), "the replacement takes the conflicted lease's place");
        Assert.That((await LeasesOfAsync(client)).Select(l => l.Port), Is.EquivalentTo(leases.Ports));
    }

    [Test]
    public async Task Many_concurrent_lease_requests_get_distinct_ports()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        var sets = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ =>
            client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false }).AsTask()));

        Assert.That(sets.SelectMany(s => s.Ports).ToArray(), Has.Length.EqualTo(100).And.Unique);
        Assert.That(await LeasesOfAsync(client), Has.Count.EqualTo(100));
        await Task.WhenAll(sets.Select(s => s.DisposeAsync().AsTask()));
        Assert.That(await LeasesOfAsync(client), Is.Empty);
    }

    [Test]
    public async Task A_retry_after_a_lost_grant_does_not_create_a_second_lease()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with { RequestTimeout = TimeSpan.FromMilliseconds(200) });
        var grants = 0;
        client.ReplyFilter = reply => reply.MessageType != MessageTypes.Of<PortGrant>() || Interlocked.Increment(ref grants) > 1;

        await using var leases = await client.LeasePortAsync();

        Assert.That(grants, Is.EqualTo(2), "the first grant should have been dropped and the retry answered");
        var held = await LeasesOfAsync(client);
        Assert.That(held.Select(l => l.LeaseId), Is.EqualTo(leases.Leases.Select(l => l.LeaseId)),
            "the registry must answer the retry from its reply cache, not grant a second lease");
    }

    [Test]
    public async Task Releasing_with_a_stale_fencing_token_is_fenced()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });

        var ex = Assert.ThrowsAsync<FencedException>(async () =>
            await client.ReleaseLeaseAsync(leases.Leases[0] with { FencingToken = leases.Leases[0].FencingToken - 1 }));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.Fenced));
    }
}
