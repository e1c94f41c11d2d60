using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>
/// Free checks made ahead of demand (PortVerifier, VerifiedPorts): a grant takes a port checked free at most
/// VerifiedPortFreshness before, never a port that was taken or rejoined the queue since, and checks inline otherwise.
/// Most tests run the verifier's checks by hand (RunVerifier) on a fake clock, so they decide when checks happen.
/// </summary>
public class PortVerifierTests
{
    private static readonly TimeSpan Freshness = LeaseOptions.Default.VerifiedPortFreshness;

    private static RegistryNodeOptions NoQuarantine() =>
        RegistryNodeOptions.Default with { Leases = LeaseOptions.Default with { Quarantine = TimeSpan.Zero } };

    // Two grants in a row make demand: after the second, the verifier is asked to check the next port of the queue.
    private static void MakeDemand(RegistryHarness h)
    {
        h.Lease();
        h.Lease();
    }

    [Test]
    public void A_port_checked_ahead_is_granted_without_a_second_check_within_the_freshness_window()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        Assert.That(h.RunVerifier(), Is.EqualTo(1), "two grants in a row should have the verifier check one port ahead");
        var checks = h.Availability.Checks;

        var lease = h.Lease();

        Assert.That(lease.Port, Is.EqualTo(20002), "the port checked ahead is the next one in the queue");
        Assert.That(h.Availability.Checks, Is.EqualTo(checks), "a port checked free moments ago was checked again");
        Assert.That(h.Registry.Leases.Verified.Used, Is.EqualTo(1));
    }

    [Test]
    public void A_check_exactly_as_old_as_the_freshness_window_still_counts()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        h.RunVerifier();
        var checks = h.Availability.Checks;

        h.Time.Advance(Freshness);
        h.Lease();

        Assert.That(h.Availability.Checks, Is.EqualTo(checks), "a check exactly VerifiedPortFreshness old should still be used");
    }

    [Test]
    public void A_check_older_than_the_freshness_window_is_made_again_inline()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        h.RunVerifier();
        var checks = h.Availability.Checks;

        h.Time.Advance(Freshness + TimeSpan.FromMilliseconds(1));
        var lease = h.Lease();

        Assert.That(lease.Port, Is.EqualTo(20002));
        Assert.That(h.Availability.Checks, Is.EqualTo(checks + 1), "a stale check should be made again when the port is granted");
        Assert.That(h.Registry.Leases.Verified.Used, Is.Zero);
    }

    [Test]
    public async Task A_port_bound_by_someone_else_after_a_stale_check_is_not_granted()
    {
        var ports = await TestPorts.LeaseAsync(4);
        using var h = new RegistryHarness(pool: ports, availability: new PortAvailability());
        MakeDemand(h);
        Assert.That(h.RunVerifier(), Is.EqualTo(1));
        var checkedAhead = ports[2];

        using var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        squatter.Bind(new IPEndPoint(IPAddress.Loopback, checkedAhead));
        squatter.Listen();
        h.Time.Advance(Freshness + TimeSpan.FromMilliseconds(1));
        var lease = h.Lease();

        Assert.That(lease.Port, Is.Not.EqualTo(checkedAhead), "a port bound after its check went stale was granted");
        Assert.That(h.Registry.Leases.Pool.IsFree(checkedAhead) || h.Registry.Leases.Pool.IsLeased(checkedAhead), Is.False,
            "the port found in use should rest in quarantine");
    }

    [Test]
    public void A_port_the_verifier_finds_in_use_is_quarantined_and_the_next_one_granted()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        h.Availability.Busy.Add(20002);
        h.RunVerifier();

        var lease = h.Lease();

        Assert.That(lease.Port, Is.EqualTo(20003));
        Assert.That(h.Registry.Leases.Pool.QuarantinedCount, Is.EqualTo(1), "the port found in use should rest before it is tried again");
        Assert.That(h.Registry.Leases.Pool.IsFree(20002), Is.False);
    }

    [Test]
    public void The_verifier_does_not_check_a_port_taken_before_its_check_began()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        h.Lease(preferredPort: 20002); // the port the verifier was asked about, taken (and checked inline) first
        var checks = h.Availability.Checks;

        h.RunVerifier();

        Assert.That(h.Availability.Checked.Skip(checks), Does.Not.Contain(20002), "the verifier bound a port that is leased");
    }

    [Test]
    public void A_check_from_before_a_port_left_and_rejoined_the_queue_is_not_used()
    {
        using var h = new RegistryHarness(NoQuarantine(), pool: Enumerable.Range(20000, 3));
        MakeDemand(h);
        h.RunVerifier(); // 20002 checked free; the result waits to be collected
        // A reclaim takes the port without looking at checks; released without quarantine, it rejoins the queue.
        var held = h.Do(r => r.Handle(new PortRequest { NodeId = "n1", PreferredPort = 20002, Reclaim = true })).Leases[0];
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = held.LeaseId, NodeId = "n1", FencingToken = held.FencingToken }));
        var checks = h.Availability.Checks;

        var lease = h.Lease(); // 20002 is the only free port again

        Assert.That(lease.Port, Is.EqualTo(20002));
        Assert.That(h.Availability.Checks, Is.EqualTo(checks + 1), "a check from the port's previous stay in the queue was taken for a current one");
    }

    [Test]
    public void An_idle_registry_checks_nothing_in_the_background()
    {
        using var h = new RegistryHarness(pool: Enumerable.Range(20000, 5));
        h.Lease();
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Lease();

        Assert.That(h.RunVerifier(), Is.Zero, "grants a second apart should not make the verifier work ahead");
    }

    [Test]
    public void A_freshness_window_of_zero_turns_checking_ahead_off()
    {
        var options = RegistryNodeOptions.Default with { Leases = LeaseOptions.Default with { VerifiedPortFreshness = TimeSpan.Zero } };
        using var h = new RegistryHarness(options, pool: Enumerable.Range(20000, 5));
        MakeDemand(h);
        h.Lease();

        Assert.That(h.RunVerifier(), Is.Zero, "with VerifiedPortFreshness zero nothing should be checked ahead");
    }

    [Test]
    public void Grants_racing_the_background_verifier_never_share_a_port_or_bind_a_leased_one()
    {
        var availability = new WatchingPortAvailability();
        using var h = new RegistryHarness(NoQuarantine(), pool: Enumerable.Range(20000, 24), availability: availability, verifyPortsInBackground: true);
        var verifier = h.Registry.Leases.Verified.Verifier;
        var live = new Queue<PortLease>();
        var duplicates = 0;

        for (var i = 0; i < 20_000; i++)
        {
            // Mostly the grants race the verifier; now and then let it catch up, so some grants surely use its checks.
            if (i % 64 == 0)
                Assert.That(SpinWait.SpinUntil(() => verifier.Completed == verifier.Requested, TimeSpan.FromSeconds(10)), Is.True,
                    "the background verifier did not get through its checks within 10 s");
            var lease = h.Lease();
            if (!availability.Leased.TryAdd(lease.Port, 0)) duplicates++;
            live.Enqueue(lease);
            if (live.Count < 12) continue;
            var oldest = live.Dequeue();
            // Forget it before releasing: a check the verifier makes after this point is legitimate.
            availability.Leased.TryRemove(oldest.Port, out _);
            h.Do(r => r.Handle(new LeaseRelease { LeaseId = oldest.LeaseId, NodeId = "n1", FencingToken = oldest.FencingToken }));
        }

        Assert.That(duplicates, Is.Zero, "a port was granted while another lease held it");
        Assert.That(availability.ChecksOfLeasedPorts, Is.Zero, "the verifier bound a port that was leased");
        Assert.That(h.Registry.Leases.Verified.Used, Is.GreaterThan(0), "no grant used a background check: the race was not exercised");
    }

    [Test]
    public async Task Concurrent_clients_of_a_node_never_get_the_same_port()
    {
        await using var host = await TestNodes.StartAsync();
        // 160 live leases: within the 200-port block a test-started registry gets from the kit.
        const int clients = 4, leasesEach = 40, window = 32;

        var grants = await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() =>
        {
            using var dealer = new TestDealer(host.RouterEndpoint);
            var ports = new List<int>(leasesEach);
            var sent = 0;
            for (; sent < window; sent++) dealer.Send(dealer.NextRequestId(), new PortRequest { NodeId = $"client-{c}", Protocol = PortProtocols.Tcp });
            while (ports.Count < leasesEach)
            {
                ports.Add(TestDealer.Expect<PortGrant>(dealer.Receive()).Leases[0].Port);
                if (sent++ < leasesEach) dealer.Send(dealer.NextRequestId(), new PortRequest { NodeId = $"client-{c}", Protocol = PortProtocols.Tcp });
            }
            return ports;
        })));

        var all = grants.SelectMany(p => p).ToList();
        Assert.That(all, Has.Count.EqualTo(clients * leasesEach));
        Assert.That(all.Distinct().Count(), Is.EqualTo(all.Count), "two live leases share a port");
    }

    /// <summary>Every port free; counts checks of ports the test holds leases on (which must never happen).</summary>
    private sealed class WatchingPortAvailability : IPortAvailability
    {
        private int _checksOfLeasedPorts;

        public ConcurrentDictionary<int, byte> Leased { get; } = new();

        public int ChecksOfLeasedPorts => Volatile.Read(ref _checksOfLeasedPorts);

        public bool IsFree(int port, string protocol)
        {
            if (Leased.ContainsKey(port)) Interlocked.Increment(ref _checksOfLeasedPorts);
            Thread.SpinWait(50); // widen the window a racing grant could hit
            return true;
        }
    }

    [Test]
    public async Task A_batch_read_from_the_socket_tables_finds_the_held_port_binds_nothing_and_stamps_when_it_began()
    {
        var availability = new CountingAvailability(new PortAvailability());
        using var table = PortAvailabilityTests.OpenTableOrConfirmUnsupported(new PortAvailability());
        if (table is null) return;
        var ports = await TestPorts.LeaseAsync(6);
        var pool = new PortPool(ports);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        // Not disposed: it would dispose the table, which the using above owns.
        var verifier = new PortVerifier(pool, availability, time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, background: false, () => table);
        using var held = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        held.Bind(new IPEndPoint(IPAddress.Loopback, ports[3]));
        foreach (var port in ports) verifier.Request(port, pool.GenerationOf(port));
        var began = time.GetTimestamp();

        Assert.That(verifier.RunPending(), Is.EqualTo(ports.Count));

        var results = new List<PortCheckResult>();
        while (verifier.TryGetResult(out var result)) results.Add(result);
        Assert.That(verifier.Scans, Is.EqualTo(1), "the first batch reads the tables (nothing measured yet says binds are cheaper)");
        Assert.That(availability.Checks, Is.EqualTo(0), "no port bound");
        Assert.That(results.Select(r => r.Port), Is.EqualTo(ports), "answered in the order asked");
        Assert.That(results.Select(r => r.Outcome), Is.EqualTo(ports.Select(p => p == ports[3] ? PortCheckOutcome.InUse : PortCheckOutcome.Free)),
            "the port a UDP socket holds is in use, the others free");
        Assert.That(results.Select(r => r.BeganAt), Is.All.EqualTo(began), "stamped with when the reading began");
    }

    /// <summary>A real free check that counts its binds.</summary>
    [Test]
    public async Task A_reading_the_kernel_refuses_turns_readings_off_and_every_batch_binds_from_then_on()
    {
        var availability = new CountingAvailability(new PortAvailability());
        var ports = await TestPorts.LeaseAsync(4);
        var pool = new PortPool(ports);
        var table = new ScriptedTable(() => throw new SocketException((int)SocketError.AccessDenied));
        using var logs = new CapturingLoggerFactory();
        using var verifier = new PortVerifier(pool, availability, TimeProvider.System, logs.CreateLogger("verifier"), background: false, () => table, alwaysTables: true);

        foreach (var port in ports.Take(2)) verifier.Request(port, pool.GenerationOf(port));
        verifier.RunPending();
        foreach (var port in ports.Skip(2)) verifier.Request(port, pool.GenerationOf(port));
        verifier.RunPending();

        Assert.That((table.Readings, table.Disposed), Is.EqualTo((1, true)), "the refused reading is the last: the table is closed");
        Assert.That((verifier.Scans, availability.Checks), Is.EqualTo((0L, 4)), "both batches were answered by binds");
        Assert.That(Results(verifier).Select(r => r.Outcome), Is.All.EqualTo(PortCheckOutcome.Free));
        Assert.That(logs.Entries.Count(e => e.Message.Contains("socket tables failed")), Is.EqualTo(1), "the switch to binds is logged once");
    }

    [Test]
    public async Task Three_untrusted_readings_in_a_row_turn_readings_off_and_a_good_one_between_starts_the_count_again()
    {
        var availability = new CountingAvailability(new PortAvailability());
        var ports = await TestPorts.LeaseAsync(1);
        var pool = new PortPool(ports);
        // Untrusted, untrusted, good, then untrusted from then on.
        var table = new ScriptedTable(() => false);
        table.Answers.Enqueue(false);
        table.Answers.Enqueue(false);
        table.Answers.Enqueue(true);
        using var verifier = new PortVerifier(pool, availability, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, background: false, () => table, alwaysTables: true);

        for (var batch = 0; batch < 8; batch++)
        {
            verifier.Request(ports[0], pool.GenerationOf(ports[0]));
            verifier.RunPending();
        }

        Assert.That(table.Readings, Is.EqualTo(6), "readings stop after the third untrusted one in a row (batches 4-6), not after the first three");
        Assert.That(table.Disposed, Is.True);
        Assert.That((verifier.Scans, availability.Checks), Is.EqualTo((1L, 7)), "one batch read the tables, the seven others bound the port");
        Assert.That(Results(verifier), Has.Count.EqualTo(8), "every batch was answered");
    }

    private static List<PortCheckResult> Results(PortVerifier verifier)
    {
        var results = new List<PortCheckResult>();
        while (verifier.TryGetResult(out var result)) results.Add(result);
        return results;
    }

    // A socket table that answers from a script: queued answers first, then the fallback; counts readings.
    private sealed class ScriptedTable(Func<bool> fallback) : ISocketTable
    {
        public Queue<bool> Answers { get; } = new();
        public int Readings { get; private set; }
        public bool Disposed { get; private set; }

        public bool TryFindUsed(int first, int last, Span<bool> used)
        {
            Readings++;
            used[..(last - first + 1)].Clear();
            return Answers.TryDequeue(out var answer) ? answer : fallback();
        }

        public void Dispose() => Disposed = true;
    }

    private sealed class CountingAvailability(IPortAvailability inner) : IPortAvailability
    {
        public int Checks { get; private set; }

        public bool IsFree(int port, string protocol)
        {
            Checks++;
            return inner.IsFree(port, protocol);
        }
    }
}

