using System.Diagnostics;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Tenants;
using Onex.Testing;
using Onex.Tests.Auth;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;
using Onex.Transports.Registry;

namespace Onex.Tests.Watches;

/// <summary>
/// <see cref="RegistryClient.WatchAsync"/> and <c>onex watch</c> with a token: changes come over the request socket,
/// filtered to the token's tenant (PROTOCOL.md 16.7), while the PUB endpoint carries heartbeats only.
/// </summary>
public class TokenWatchTests
{
    private static readonly TimeSpan ChildProcessLimit = TimeSpan.FromSeconds(60);

    private static RegistryClientOptions Options(Onex.RegistryNode.Hosting.RegistryNodeHost host, string? token, string nodeId, bool announce = true) =>
        TestRegistry.ClientOptionsFor(host.RouterEndpoint, host.PubEndpoint, nodeId) with { Token = token, AnnounceNode = announce };

    [Test]
    public async Task A_client_with_a_token_watches_its_own_tenant_over_the_request_socket()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using var ownerA = await RegistryClient.ConnectAsync(Options(host, files.NodeA, "a-worker"));
        await using var ownerB = await RegistryClient.ConnectAsync(Options(host, files.NodeB, "b-worker"));
        await using var watcher = await RegistryClient.ConnectAsync(Options(host, files.ReaderA, "a-reader", announce: false));
        await using var events = watcher.WatchEvents();
        var initial = (await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot"))[^1];

        await ownerB.RegisterBusAsync("b-bus", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await ownerA.RegisterBusAsync("a-bus", BusKinds.Zmq, ["tcp://127.0.0.1:2"]);
        var seen = await events.UntilAsync(e => e.Change?.Key == "a-bus", "a-bus registered");

        Assert.Multiple(() =>
        {
            Assert.That(initial.Snapshot!.Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "a-worker" }), "the initial snapshot is tenant a's");
            Assert.That(seen.Where(e => e.Change is not null).Select(e => e.Change!.Key), Does.Not.Contain("b-bus"), "tenant b's bus reached tenant a's watcher");
            Assert.That(seen.Where(e => e.Snapshot is not null).SelectMany(e => e.Snapshot!.Buses).Select(b => b.Name), Does.Not.Contain("b-bus"));
            // (A loaded machine may delay heartbeats past three periods: the watcher then polls a snapshot, rightly.)
            Assert.That(seen.Where(e => e.Kind == RegistryWatchEventKind.Resynced && e.ResyncReason == RegistryResyncReason.Gap
                    && (e.Detail.StartsWith("the watch stream", StringComparison.Ordinal) || e.Detail.StartsWith("expected sequence", StringComparison.Ordinal))),
                Is.Empty, "another tenant's change between two of ours is not a gap on the watch stream");
        });
        Assert.That(await host.InvokeAsync(_ => host.Watches!.Count), Is.EqualTo(1), "the watch runs over the request socket");
    }

    [Test]
    public async Task A_change_goes_to_the_tenant_its_record_names_even_when_another_tenant_has_a_node_of_the_same_id()
    {
        using var files = new AuthTestFiles();
        var nodeDefault = AuthFileEditor.AddToken(files.Path, TenantNames.Default, AuthRoles.Node, "default-node");
        var readerDefault = AuthFileEditor.AddToken(files.Path, TenantNames.Default, AuthRoles.Reader, "default-reader");
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        // Both tenants have a node "shared"; tenant a's announces last. Records of the tenant default name no tenant
        // on the wire (null), so only the record's own field may decide, not the node id.
        await using var inDefault = await RegistryClient.ConnectAsync(Options(host, nodeDefault, "shared"));
        await using var inA = await RegistryClient.ConnectAsync(Options(host, files.NodeA, "shared"));
        await using var watcherDefault = await RegistryClient.ConnectAsync(Options(host, readerDefault, "d-reader", announce: false));
        await using var watcherA = await RegistryClient.ConnectAsync(Options(host, files.ReaderA, "a-reader", announce: false));
        await using var eventsDefault = watcherDefault.WatchEvents();
        await using var eventsA = watcherA.WatchEvents();
        await eventsDefault.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "tenant default's initial snapshot");
        await eventsA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "tenant a's initial snapshot");

        await inDefault.RegisterBusAsync("d-bus", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await inA.RegisterBusAsync("a-bus", BusKinds.Zmq, ["tcp://127.0.0.1:2"]);
        var seenDefault = await eventsDefault.UntilAsync(e => e.Change?.Key == "d-bus", "d-bus on tenant default's watch");
        var seenA = await eventsA.UntilAsync(e => e.Change?.Key == "a-bus", "a-bus on tenant a's watch");

        Assert.Multiple(() =>
        {
            Assert.That(seenA.Where(e => e.Change is not null).Select(e => e.Change!.Key), Does.Not.Contain("d-bus"),
                "tenant default's bus reached tenant a's watcher through the shared node id");
            Assert.That(seenDefault.Where(e => e.Change is not null).Select(e => e.Change!.Key), Does.Not.Contain("a-bus"));
        });
    }

    [Test]
    public async Task A_client_without_a_token_keeps_watching_the_pub_endpoint()
    {
        await using var host = await TestNodes.StartAsync();
        await using var client = await RegistryClient.ConnectAsync(Options(host, null, "open-worker"));
        await using var events = client.WatchEvents();
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await client.RegisterBusAsync("open-bus", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await events.UntilAsync(e => e.Change?.Key == "open-bus", "open-bus registered");

        Assert.That(await host.InvokeAsync(_ => host.Watches!.Count), Is.Zero, "a client without a token opened a watch on the request socket");
    }

    [Test]
    public async Task A_watch_with_an_unknown_token_fails_with_unauthenticated()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using var client = await RegistryClient.ConnectAsync(Options(host, Onex.RegistryNode.Auth.AccessTokens.Generate(), "stranger", announce: false));

        var refused = Assert.ThrowsAsync<UnauthenticatedException>(async () =>
        {
            await foreach (var _ in client.WatchAsync()) break;
        });

        Assert.That(refused!.Code, Is.EqualTo(ErrorCodes.Unauthenticated));
    }

    [Test]
    public async Task A_token_watcher_whose_stream_fell_behind_resyncs_by_snapshot_and_says_why()
    {
        using var files = new AuthTestFiles();
        // Four grants in one request are four changes in one turn of the registry: more than the two a watch may hold.
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path, Watches = o.Watches with { MaxQueuedEvents = 2 } });
        await using var owner = await RegistryClient.ConnectAsync(Options(host, files.NodeA, "a-worker"));
        await using var watcher = await RegistryClient.ConnectAsync(Options(host, files.Admin, "admin", announce: false));
        await using var events = watcher.WatchEvents();
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await using var leases = await owner.LeasePortsAsync(4, new LeaseRequestOptions { RenewAutomatically = false });
        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced && e.Detail.Contains(ErrorCodes.WatchFellBehind),
            "a resync saying the stream fell behind");

        var resync = seen[^1];
        Assert.Multiple(() =>
        {
            Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap));
            Assert.That(resync.Detail, Does.Contain(ErrorCodes.WatchFellBehind), "the resync says the stream fell behind");
            Assert.That(resync.Snapshot!.Leases.Select(l => l.LeaseId), Is.SupersetOf(leases.Leases.Select(l => l.LeaseId)),
                "the snapshot carries what the stream could not");
        });
        await owner.RegisterBusAsync("after", BusKinds.Zmq, ["tcp://127.0.0.1:3"]);
        await events.UntilAsync(e => e.Change?.Key == "after", "a change on the reopened stream");
    }

    [Test]
    public async Task A_token_watcher_that_misses_a_stream_message_resyncs()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using var owner = await RegistryClient.ConnectAsync(Options(host, files.NodeA, "a-worker"));
        await using var watcher = await RegistryClient.ConnectAsync(Options(host, files.NodeA, "a-watcher", announce: false));
        var dropped = 0;
        watcher.WatchChangeFilter = change => change.ChangeType != ChangeTypes.LeaseGranted || Interlocked.Increment(ref dropped) > 1;
        await using var events = watcher.WatchEvents();
        await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the initial snapshot");

        await using var leases = await owner.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });
        var seen = await events.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced && e.Snapshot!.Leases.Any(l => l.LeaseId == leases.Leases[0].LeaseId),
            "a resync whose snapshot carries the dropped change");

        Assert.That(seen.Any(e => e.Change?.ChangeType == ChangeTypes.LeaseGranted), Is.False, "the dropped change must not appear");
    }

    [Test]
    public async Task Onex_watch_with_a_token_prints_changes_from_a_node_process_with_an_auth_file()
    {
        using var files = new AuthTestFiles();
        var data = Directory.CreateTempSubdirectory("onex-watch-data-");
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        using var node = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--data-dir", data.FullName,
            "--auth-file", files.Path, "--log-level", "Warning");
        Process? watch = null;
        try
        {
            await node.WaitForLineAsync("registry: store", ChildProcessLimit);
            watch = StartOnex("--registry", router, "--registry-pub", pub, "--token", files.ReaderA, "watch", "--prefix", "registry.bus.");
            var first = await watch.StandardOutput.ReadLineAsync().Within("onex watch's first line", ChildProcessLimit);
            Assert.That(first, Does.Contain("resync"), "onex watch starts with its snapshot");

            await using (var owner = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(router, pub, "a-worker") with { Token = files.NodeA, DepartOnDispose = false }))
            await using (var other = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(router, pub, "b-worker") with { Token = files.NodeB, DepartOnDispose = false }))
            {
                await other.RegisterBusAsync("b-orders", BusKinds.Zmq, ["tcp://127.0.0.1:4"]);
                await owner.RegisterBusAsync("a-orders", BusKinds.Zmq, ["tcp://127.0.0.1:5"]);
                var lines = new List<string>();
                while (lines.LastOrDefault()?.Contains("a-orders") != true)
                    lines.Add(await watch.StandardOutput.ReadLineAsync().Within("a line about a-orders", ChildProcessLimit) ?? "(end of output)");

                Assert.That(lines[^1], Does.Contain(ChangeTypes.BusRegistered), "onex watch printed the change");
                Assert.That(string.Join('\n', lines), Does.Not.Contain("b-orders"), "onex watch printed another tenant's bus");
            }
        }
        finally
        {
            if (watch is { HasExited: false }) watch.Kill(entireProcessTree: true);
            watch?.Dispose();
            node.Terminate();
            await node.WaitForExitAsync(ChildProcessLimit);
            data.Delete(recursive: true);
        }
    }

    private static Process StartOnex(params string[] args)
    {
        var start = OnexProcess.StartInfo(args);
        start.Environment.Remove("ONEX_TOKEN");
        return Process.Start(start) ?? throw new InvalidOperationException("could not start onex");
    }
}
