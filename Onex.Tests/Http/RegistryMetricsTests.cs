using Onex.Errors;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;

namespace Onex.Tests.Http;

/// <summary>
/// <c>/metrics</c> of a registry node process (one process, so its meter is the only one), checked against known
/// workloads: N leases give the lease gauge N, M failures of a code give that code's counter M.
/// </summary>
public class RegistryMetricsTests
{
    /// <param name="range">The node's pool; null: a block reserved for the test.</param>
    /// <param name="options">More command-line options for the node.</param>
    internal static async Task<(NodeProcess Node, string Router, HttpClient Http)> StartNodeAsync(Onex.RegistryNode.Leases.PortRange? range = null, params string[] options)
    {
        var pool = (range ?? await OnexTest.ReservePortRangeAsync()).ToString();
        var node = NodeProcess.Start(["--endpoint", "tcp://127.0.0.1:0", "--pub-endpoint", "tcp://127.0.0.1:0", "--http", "http://127.0.0.1:0",
            "--port-range", pool, "--store", "memory", "--log-level", "Warning", .. options]);
        var router = (await node.WaitForLineAsync("registry: router ", HttpTestClient.Wait))["registry: router ".Length..];
        var url = (await node.WaitForLineAsync("registry: http ", HttpTestClient.Wait))["registry: http ".Length..];
        return (node, router, HttpTestClient.Create(url));
    }

    internal static async Task StopAsync(NodeProcess node, HttpClient http)
    {
        http.Dispose();
        try
        {
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(HttpTestClient.Wait), Is.Zero, $"the node did not stop cleanly; stderr:\n{node.Errors}");
        }
        finally
        {
            node.KillIfRunning();
            node.Dispose();
        }
    }

    [Test]
    public async Task N_leases_show_as_the_lease_gauge_and_their_ports_leave_the_free_gauge()
    {
        var (node, router, http) = await StartNodeAsync();
        try
        {
            const int leases = 7;
            var before = await HttpTestClient.GetUntilAsync(http, "/metrics",
                m => PrometheusText.Value(m, "onex_registry_ports_free") > 0, "the free-port gauge");
            var free = PrometheusText.Value(before, "onex_registry_ports_free")!.Value;

            using var dealer = new TestDealer(router);
            var granted = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = leases }).Leases;
            Assert.That(granted, Has.Count.EqualTo(leases));

            var metrics = await HttpTestClient.GetUntilAsync(http, "/metrics",
                m => PrometheusText.Value(m, "onex_registry_leases_active") == leases && PrometheusText.Value(m, "onex_registry_ports_free") == free - leases,
                $"{leases} active leases and {leases} fewer free ports");
            Assert.That(PrometheusText.Value(metrics, "onex_registry_requests_total", ("type", "PortRequest"), ("code", "OK")), Is.EqualTo(1));
            Assert.That(PrometheusText.Value(metrics, "onex_registry_request_duration_seconds_count", ("type", "PortRequest")), Is.EqualTo(1));
            Assert.That(PrometheusText.Value(metrics, "onex_registry_change_sequence"), Is.EqualTo(leases), "one lease.granted change per lease");

            var first = granted[0];
            dealer.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = first.LeaseId, NodeId = "n1", FencingToken = first.FencingToken });
            await HttpTestClient.GetUntilAsync(http, "/metrics",
                m => PrometheusText.Value(m, "onex_registry_leases_active") == leases - 1 && PrometheusText.Value(m, "onex_registry_ports_quarantined") == 1,
                "the released lease gone and its port in quarantine");
        }
        finally
        {
            await StopAsync(node, http);
        }
    }

    [Test]
    public async Task Background_free_checks_count_by_how_they_were_answered()
    {
        var (node, router, http) = await StartNodeAsync();
        try
        {
            using var dealer = new TestDealer(router);
            // Grants close together make demand (within VerifiedPortFreshness of each other: sent at once, as a loaded
            // client does, not one round trip apart, which a busy machine can stretch past it): the verifier is asked to
            // check the ports behind them, its first batch read from the socket tables where the kernel lists bound-only
            // sockets (nothing measured yet says binds are cheaper).
            const int requests = 32;
            for (var i = 0; i < requests; i++) dealer.Send(dealer.NextRequestId(), new PortRequest { NodeId = "n1" });
            for (var i = 0; i < requests; i++) Assert.That(dealer.Receive().BodyAs<PortGrant>().Leases, Has.Count.EqualTo(1));
            double Checks(string m, string way) => PrometheusText.Value(m, "onex_registry_port_checks_total", ("way", way)) ?? -1;
            var metrics = await HttpTestClient.GetUntilAsync(http, "/metrics", m => Checks(m, "bind") + Checks(m, "table") > 0, "background free checks");

            var tables = Onex.Tests.Registry.PortAvailabilityTests.KernelListsBoundSockets;
            Assert.That(Checks(metrics, "bind"), Is.GreaterThanOrEqualTo(0), "the bind count is exported");
            Assert.That(Checks(metrics, "table") > 0, Is.EqualTo(tables), $"kernel {Environment.OSVersion.Version}: checks answered from the socket tables");
        }
        finally
        {
            await StopAsync(node, http);
        }
    }

    [Test]
    public async Task M_failures_of_a_code_count_M_under_that_code_and_type()
    {
        var (node, router, http) = await StartNodeAsync();
        try
        {
            const int failures = 5;
            using var dealer = new TestDealer(router);
            for (var i = 0; i < failures; i++)
            {
                var error = TestDealer.ExpectError(dealer.Request(new LeaseRenewal { LeaseId = $"no-such-lease-{i}", NodeId = "n1", FencingToken = 1 }));
                Assert.That(error.Code, Is.EqualTo(ErrorCodes.LeaseNotFound));
            }
            dealer.SendFrames([1, 2, 3]); // not MessagePack: MALFORMED, type unreadable
            Assert.That(TestDealer.ExpectError(dealer.Receive()).Code, Is.EqualTo(ErrorCodes.Malformed));

            // Counters are counted before the reply leaves, so one scrape after the replies sees them all.
            var metrics = await http.GetStringAsync("/metrics");
            Assert.That(PrometheusText.Value(metrics, "onex_registry_requests_total", ("type", "LeaseRenewal"), ("code", ErrorCodes.LeaseNotFound)), Is.EqualTo(failures));
            Assert.That(PrometheusText.Value(metrics, "onex_registry_requests_total", ("type", "unreadable"), ("code", ErrorCodes.Malformed)), Is.EqualTo(1));
            Assert.That(PrometheusText.Value(metrics, "onex_registry_requests_total", ("type", "LeaseRenewal"), ("code", "OK")), Is.Null, "no renewal succeeded");
        }
        finally
        {
            await StopAsync(node, http);
        }
    }

    [Test]
    public async Task Runtime_and_process_metrics_are_exported_beside_the_registry_ones()
    {
        var (node, _, http) = await StartNodeAsync();
        try
        {
            var metrics = await http.GetStringAsync("/metrics");
            Assert.That(PrometheusText.Value(metrics, "dotnet_process_memory_working_set_bytes"), Is.GreaterThan(0));
            Assert.That(PrometheusText.Value(metrics, "dotnet_process_cpu_time_seconds_total", ("cpu_mode", "user")), Is.GreaterThan(0));
            Assert.That(PrometheusText.Value(metrics, "dotnet_gc_heap_total_allocated_bytes_total"), Is.GreaterThan(0));
            Assert.That(metrics, Does.Contain("# TYPE onex_registry_leases_active gauge"));
        }
        finally
        {
            await StopAsync(node, http);
        }
    }
}
