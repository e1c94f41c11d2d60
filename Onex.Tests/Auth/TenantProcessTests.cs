using System.Diagnostics;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.Testing;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;
using Onex.Transports.Registry;

namespace Onex.Tests.Auth;

/// <summary>Two tenants sharing one registry node program (a real process with an auth file and a SQLite store).</summary>
public class TenantProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static RegistryClientOptions Client(string router, string pub, string token, string nodeId) => new()
    {
        Endpoint = router,
        PubEndpoint = pub,
        Token = token,
        NodeId = nodeId,
        DepartOnDispose = false, // the restart below must find the nodes
        RequestTimeout = TimeSpan.FromSeconds(5),
    };

    [Test]
    public async Task Tenants_see_only_their_own_a_tenant_over_its_lease_quota_leaves_the_other_its_ports_and_tenants_survive_a_restart()
    {
        using var files = new AuthTestFiles(new TenantQuotas { Leases = 3 });
        var data = Directory.CreateTempSubdirectory("onex-auth-data-");
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        string[] args = ["--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--data-dir", data.FullName, "--auth-file", files.Path, "--log-level", "Trace"];
        var logs = "";
        var node = NodeProcess.Start(args);
        try
        {
            await node.WaitForLineAsync("registry: router", Wait);
            await using (var a = await RegistryClient.ConnectAsync(Client(router, pub, files.NodeA, "a-worker")))
            await using (var b = await RegistryClient.ConnectAsync(Client(router, pub, files.NodeB, "b-worker")))
            {
                var held = await a.LeasePortsAsync(3, new LeaseRequestOptions { RenewAutomatically = false });
                var refused = Assert.ThrowsAsync<QuotaExceededException>(async () => await a.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false }));
                Assert.That(refused!.Code, Is.EqualTo(ErrorCodes.QuotaExceeded));
                Assert.That(refused.Details["limit"], Is.EqualTo("3"), "QUOTA_EXCEEDED names the limit");
                Assert.That(refused.Details["quota"], Is.EqualTo("leases"));
                // The other tenant still gets ports from the shared pool.
                var other = await b.LeasePortsAsync(2, new LeaseRequestOptions { RenewAutomatically = false });
                Assert.That(other.Leases.Select(l => l.Port).Intersect(held.Leases.Select(l => l.Port)), Is.Empty);

                var seenByA = await a.SnapshotAsync();
                var seenByB = await b.SnapshotAsync();
                Assert.That(seenByA.Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "a-worker" }), "tenant a's view of the nodes");
                Assert.That(seenByB.Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "b-worker" }), "tenant b's view of the nodes");
                Assert.That(seenByA.Leases.Select(l => l.NodeId).Distinct(), Is.EqualTo(new[] { "a-worker" }));
                Assert.That(seenByB.Leases.Select(l => l.NodeId).Distinct(), Is.EqualTo(new[] { "b-worker" }));
                Assert.That(seenByA.Leases, Has.Count.EqualTo(3));

                // A stranger gets nothing.
                using var stranger = new TestDealer(router);
                Assert.That(TestDealer.ExpectError(stranger.Request(new SnapshotRequest())).Code, Is.EqualTo(ErrorCodes.Unauthenticated));
            }

            // SIGHUP re-reads the file: a token added meanwhile works without a restart.
            var late = AuthFileEditor.AddToken(files.Path, "b", AuthRoles.Reader, "b-late");
            node.Signal(1);
            await WaitForStderrAsync(node, "reloaded (SIGHUP)");
            using (var lateReader = new TestDealer(router) { Token = late })
                Assert.That(lateReader.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "b-worker" }));

            node.Terminate();
            Assert.That(await node.WaitForExitAsync(Wait), Is.Zero, node.Errors);
            logs += node.Output + node.Errors;
            node.Dispose();

            // Restarted on the same store: the nodes are still in their tenants.
            node = NodeProcess.Start(args);
            await node.WaitForLineAsync("registry: router", Wait);
            using var admin = new TestDealer(router) { Token = files.Admin };
            var all = admin.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
            Assert.That(all.Nodes.ToDictionary(n => n.NodeId, n => n.Metadata![AuthGate.TenantKey]),
                Is.EqualTo(new Dictionary<string, string> { ["a-worker"] = "a", ["b-worker"] = "b" }), "tenants after a restart");
            using var readerB = new TestDealer(router) { Token = files.ReaderB };
            Assert.That(readerB.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "b-worker" }));
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(Wait), Is.Zero, node.Errors);
            logs += node.Output + node.Errors;
        }
        finally
        {
            node.KillIfRunning();
            node.Dispose();
            data.Delete(recursive: true);
        }

        // Trace-level logs of both runs: token names appear, tokens never do.
        Assert.That(logs, Does.Contain("auth file").IgnoreCase, "the logs do not mention the auth file at all; is this the right log?");
        foreach (var token in files.AllTokens)
            Assert.That(logs, Does.Not.Contain(token), "a token appears in the node's output");
    }

    [Test]
    public async Task A_node_started_with_SIGHUP_ignored_still_reloads_its_auth_file_on_SIGHUP()
    {
        // The harness really starts programs with SIGHUP ignored: bit 0 of SigIgn is signal 1.
        using (var probe = Process.Start(new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", NodeProcess.HangupIgnoredScript, "cat", "/proc/self/status" }, RedirectStandardOutput = true })!)
        {
            var status = await probe.StandardOutput.ReadToEndAsync();
            var ignored = Convert.ToUInt64(status.Split('\n').Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))["SigIgn:".Length..].Trim(), 16);
            Assert.That(ignored & 1, Is.EqualTo(1UL), "the nohup-like start does not ignore SIGHUP; the test below would prove nothing");
        }

        using var files = new AuthTestFiles();
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        var dll = Path.Combine(AppContext.BaseDirectory, "onex-registry.dll");
        using var node = NodeProcess.StartDll(dll, ["--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--store", "memory", "--auth-file", files.Path],
            hangupIgnored: true);
        try
        {
            await node.WaitForLineAsync("registry: router", Wait);
            node.Signal(1);
            await WaitForStderrAsync(node, "reloaded (SIGHUP)");
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(Wait), Is.Zero, node.Errors);
        }
        finally
        {
            node.KillIfRunning();
        }
    }

    private static Task WaitForStderrAsync(NodeProcess node, string text) => node.WaitForErrorTextAsync(text, Wait);
}
