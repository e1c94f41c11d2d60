using Onex.Protocol;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;

namespace Onex.Tests.Http;

/// <summary>A real Prometheus server scrapes a registry node process every second and reports what the node holds.</summary>
public class PrometheusScrapeTests
{
    [Test]
    public async Task Prometheus_scraping_the_node_reports_as_many_leases_as_were_granted()
    {
        var (node, router, http) = await RegistryMetricsTests.StartNodeAsync();
        try
        {
            var port = (await TestPorts.LeaseAsync(1))[0];
            var target = new Uri(http.BaseAddress!.ToString()).Authority;
            await using var prometheus = PrometheusServer.Start(port, target);

            await prometheus.QueryUntilAsync("up{job=\"onex-registry\"}", v => v == 1, "the registry target up");

            const int leases = 6;
            using var dealer = new TestDealer(router);
            var granted = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = leases, Purpose = "scraped" }).Leases;
            Assert.That(granted, Has.Count.EqualTo(leases));

            var reported = await prometheus.QueryUntilAsync("onex_registry_leases_active", v => v == leases, $"{leases} active leases");
            Assert.That(reported, Is.EqualTo(leases));
            var requests = await prometheus.QueryUntilAsync("sum(onex_registry_requests_total{type=\"PortRequest\",code=\"OK\"})", v => v >= 1, "the PortRequest counted");
            Assert.That(requests, Is.EqualTo(1));
        }
        finally
        {
            await RegistryMetricsTests.StopAsync(node, http);
        }
    }
}
