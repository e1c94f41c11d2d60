using System.Text.Json;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary>The registry in one child process and its clients in others, as in production.</summary>
public class CrossProcessRegistryTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(30);

    private static async Task<List<PortLease>> ReadLeasesAsync(OnexProcess holder, string who)
    {
        var line = await holder.ReadLineAsync($"{who}'s leases", ProcessTimeout);
        return JsonSerializer.Deserialize<List<PortLease>>(line, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }

    [Test]
    public async Task Clients_in_separate_processes_get_disjoint_ports_from_a_registry_process_and_release_them_on_exit()
    {
        await using var node = OnexProcess.Start(["registry", "serve", "--endpoint", "tcp://127.0.0.1:0", "--pub-endpoint", "tcp://127.0.0.1:0", "--log-level", "Warning",
            "--port-range", (await OnexTest.ReservePortRangeAsync()).ToString(), "--store", "memory", "--http", "none"]);
        var router = (await node.ReadLineAsync("the registry's router endpoint", ProcessTimeout)).Replace("registry: router ", "");
        var pub = (await node.ReadLineAsync("the registry's pub endpoint", ProcessTimeout)).Replace("registry: pub ", "");
        await using var observer = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(router, pub) with { AnnounceNode = false });

        // Both endpoints: a broadcast endpoint left to $ONEX_REGISTRY_PUB_ENDPOINT (another registry's, under scripts/test.sh)
        // would carry another epoch, which the holders would take for a restart of this registry.
        await using var first = OnexProcess.Start(["--registry", router, "--registry-pub", pub, "ports", "lease", "--count", "3", "--json"]);
        await using var second = OnexProcess.Start(["--registry", router, "--registry-pub", pub, "ports", "lease", "--count", "3", "--json"]);
        var firstLeases = await ReadLeasesAsync(first, "the first holder");
        var secondLeases = await ReadLeasesAsync(second, "the second holder");

        Assert.That(firstLeases.Select(l => l.Port).Intersect(secondLeases.Select(l => l.Port)), Is.Empty, "two processes were granted the same port");
        var live = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] });
        Assert.That(live.Leases!.Select(l => l.LeaseId), Is.EquivalentTo(firstLeases.Concat(secondLeases).Select(l => l.LeaseId)));

        first.CloseInput();
        Assert.That(await first.WaitForExitAsync(ProcessTimeout), Is.EqualTo(0), await first.StandardErrorAsync());
        var after = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] });
        Assert.That(after.Leases!.Select(l => l.LeaseId), Is.EquivalentTo(secondLeases.Select(l => l.LeaseId)),
            "the first holder's leases should be released when its stdin closed, the second's kept");
    }
}
