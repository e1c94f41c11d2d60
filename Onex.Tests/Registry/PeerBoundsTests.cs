using System.Diagnostics;
using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>
/// Hostile peers against a registry node process (PROTOCOL.md section 14): what they make it hold stays bounded, measured
/// as the node's peak resident memory in /proc, and the node keeps answering a well-behaved client.
/// </summary>
public class PeerBoundsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    // ~1 MB snapshots: eight tools whose input schemas carry 128 KB of description each.
    private const int Tools = 8;
    private const int SchemaBytes = 128 * 1024;

    [Test]
    public async Task A_client_reading_many_large_snapshots_leaves_the_node_memory_bounded()
    {
        await using var node = await StartNodeAsync();
        using var good = await WithLargeStateAsync(node);
        var peakBefore = PeakRssBytes(node.Process.Id);

        // The reply cache kept evicted replies reachable from its age queue: 600 snapshots of ~1 MB grew the node by ~950 MB.
        for (var i = 0; i < 600; i++) good.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());

        var growth = PeakRssBytes(node.Process.Id) - peakBefore;
        TestContext.Out.WriteLine($"peak RSS growth {growth / 1048576.0:F1} MiB for 600 ~1 MB snapshots read by one client");
        Assert.That(growth, Is.LessThan(200L * 1024 * 1024), "the node kept replies it no longer remembers");
    }

    [Test]
    public async Task A_peer_that_never_reads_its_replies_gets_them_dropped_and_others_are_still_served()
    {
        await using var node = await StartNodeAsync();
        using var good = await WithLargeStateAsync(node);
        var servedBefore = Served(good);
        var peakBefore = PeakRssBytes(node.Process.Id);

        const int Requests = 600; // ~600 MB of replies if the node kept them all for this peer
        using (var hostile = SilentDealer(node.Router))
        {
            for (var i = 0; i < Requests; i++) hostile.SendFrame(RegistryCodec.Encode($"s{i}", "hostile", new SnapshotRequest()));
            await WaitUntilAsync(() => Served(good) >= servedBefore + Requests + 1, "the node to answer every request of the silent peer");

            var started = Stopwatch.GetTimestamp();
            Assert.That(good.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Tools, Has.Count.EqualTo(Tools));
            var latency = Stopwatch.GetElapsedTime(started);
            var growth = PeakRssBytes(node.Process.Id) - peakBefore;
            TestContext.Out.WriteLine($"peak RSS growth {growth / 1048576.0:F1} MiB for {Requests} unread ~1 MB replies; a good client's snapshot took {latency.TotalMilliseconds:F0} ms");
            // Held for the peer: at most 16 MiB queued plus a turn's 16 MiB; the rest is garbage of building 600 snapshots,
            // which the GC frees on its own schedule (~90 MiB on a quiet machine, ~250 MiB seen under a full suite's load).
            // Without the bounds the node held all ~600 MB of replies (+1,076 MiB measured).
            Assert.That(growth, Is.LessThan(400L * 1024 * 1024), "the node held the silent peer's replies without a byte bound");
            Assert.That(latency, Is.LessThan(TimeSpan.FromSeconds(5)), "a well-behaved client waited too long while a peer did not read");
        }
        await WaitUntilAsync(() => node.Process.Output.Contains("replies to it are dropped") || node.Process.Errors.Contains("replies to it are dropped"),
            "the node to log the dropped replies");
    }

    [Test]
    public async Task A_peer_flooding_large_requests_while_the_registry_is_busy_grows_the_node_by_its_queue_bound_at_most()
    {
        await using var node = await StartNodeAsync();
        using var busy = new TestDealer(node.Router);
        busy.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        busy.Call<ToolContractRegistration, ToolContractRecord>(ToolContracts.Registration("nested", inputSchema: HostileSchemaTests.ExponentialSchema));
        var peakBefore = PeakRssBytes(node.Process.Id);

        // Keeps the registry thread busy for far longer than the flood: each validation runs to its 500 ms CPU budget
        // (PROTOCOL.md 6.4), and the registry reads the two connections in turn, so the flood's queue fills.
        const int SlowValidations = 60;
        for (var i = 0; i < SlowValidations; i++)
            busy.Send(busy.NextRequestId(), new ValidatePayload { ToolName = "nested", Payload = "{\"v\":\"x\"}" });

        var frameBytes = (int)Onex.RegistryNode.Hosting.RegistryNodeOptions.Default.MaxReceiveBytes; // the node runs with the default
        var bound = Onex.RegistryNode.Server.PeerBounds.QueuedRequestBytesPerPeer(frameBytes);
        var sendCap = 4 * bound; // before the bound (1,000 queued frames) the node took all of it
        long accepted = 0;
        var pushedBack = false;
        using (var hostile = new RawZmtpPeer(node.Router, "DEALER"))
        {
            var frame = new byte[frameBytes];
            Array.Fill(frame, (byte)'x');
            while (accepted < sendCap)
            {
                // Refused either way: TCP pushes back at the queue bound, or the node program closes the connection at its
                // bound on received frames (PeerBounds.ReceivedBytesTotal, 96 MiB: ReceivedBytesBoundTests), which comes first.
                if (!hostile.TrySend(frame, TimeSpan.FromSeconds(5)))
                {
                    pushedBack = true;
                    break;
                }
                accepted += frame.Length;
            }
        }
        var growth = PeakRssBytes(node.Process.Id) - peakBefore;
        TestContext.Out.WriteLine($"peak RSS growth {growth / 1048576.0:F1} MiB while a peer pushed {accepted / 1048576.0:F1} MiB of {frameBytes}-byte frames " +
                                  $"into a busy node (queue bound {bound / 1048576.0:F1} MiB)");
        Assert.That(pushedBack, Is.True, $"the busy node kept reading {sendCap / 1048576} MiB of requests from one peer");
        // The queue, plus garbage of the frames the registry read and refused meanwhile (TOO_LARGE: each a large-object-heap
        // copy, freed only by a full collection) and the GC's slack: +190 and +224 MiB measured; before the bound +567 MiB.
        Assert.That(growth, Is.LessThan(bound + 200L * 1024 * 1024), "the node held more of one peer's unread requests than the queue bound");
    }

    private static async Task<TestDealer> WithLargeStateAsync(RunningNode node)
    {
        var good = new TestDealer(node.Router);
        good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        var description = new string('x', SchemaBytes);
        for (var i = 0; i < Tools; i++)
            good.Call<ToolContractRegistration, ToolContractRecord>(ToolContracts.Registration($"big-{i}",
                inputSchema: $$"""{"type":"object","description":"{{description}}"}"""));
        for (var i = 0; i < 5; i++) good.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        await Task.CompletedTask;
        return good;
    }

    [Test]
    public async Task A_subscriber_that_never_reads_is_dropped_behind_and_sees_a_gap()
    {
        await using var node = await StartNodeAsync();
        using var good = new TestDealer(node.Router);
        using var silent = SilentSubscriber(node.Pub);
        using var watcher = new TestSubscriber(node.Pub);
        watcher.WaitForHeartbeat(Wait);
        // The client library's watch (`onex watch`) in a process frozen while the changes are published: it reads nothing.
        using var watch = NodeProcess.StartDll(Path.Combine(AppContext.BaseDirectory, "onex.dll"),
            ["watch", "--json", "--registry", node.Router, "--registry-pub", node.Pub], httpNone: false);
        // ~32 KB a broadcast (node.updated carries 16 KB of metadata before and after); more than the high-water mark.
        const int Changes = 3_000;
        try
        {
            await watch.WaitForLineAsync(WatchResynced, Wait);
            watch.Signal(SigStop);

            for (var i = 0; i < Changes; i++)
                good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement
                {
                    NodeId = "n1",
                    Metadata = Enumerable.Range(0, 16).ToDictionary(k => $"k{k}", _ => new string((char)('a' + i % 26), 1000)),
                });
            var published = watcher.WaitForHeartbeat(Wait, h => h.Sequence >= Changes).Sequence;

            // Reading again, the watch sees the gap (a later sequence, or a heartbeat ahead of its last change) and
            // resyncs by snapshot (PROTOCOL.md 10.1) to where the registry is: it never carries on silently.
            watch.Signal(SigCont);
            var resync = await WaitForWatchLineAsync(watch, line =>
                line.StartsWith(WatchResynced, StringComparison.Ordinal) && line.Contains("\"resyncReason\":\"gap\"", StringComparison.Ordinal));
            using var json = System.Text.Json.JsonDocument.Parse(resync);
            Assert.That(json.RootElement.GetProperty("sequence").GetInt64(), Is.GreaterThanOrEqualTo(published),
                $"the watch's resync should reach the registry's sequence; watch output:\n{watch.Output}");
        }
        finally
        {
            watch.Signal(SigCont);
            watch.Terminate();
            await watch.WaitForExitAsync(Wait);
        }

        var sequences = new List<long>();
        var message = new NetMQMessage();
        while (silent.TryReceiveMultipartMessage(TimeSpan.FromSeconds(2), ref message))
        {
            sequences.Add(RegistryCodec.DeserializeBody<RegistryChange>(Onex.Events.OnexEventCodec.Default.Decode(message[1].ToByteArray()).Payload).Sequence);
            message.Clear();
        }
        TestContext.Out.WriteLine($"the silent subscriber got {sequences.Count} of {Changes} changes");
        Assert.That(sequences, Is.Not.Empty);
        Assert.That(sequences.Count, Is.LessThan(Changes), "the node held every broadcast for a subscriber that did not read");
        Assert.That(sequences[^1], Is.LessThan(Changes), "the subscriber's last change should be behind: it must see a gap when it reads on");
    }

    private const int SigStop = 19;
    private const int SigCont = 18;
    private const string WatchResynced = "{\"kind\":\"resynced\"";

    private static Task<string> WaitForWatchLineAsync(NodeProcess watch, Func<string, bool> match) =>
        watch.WaitForLineAsync(match, Wait, "gap resync");

    internal static DealerSocket SilentDealer(string endpoint)
    {
        var socket = new DealerSocket();
        socket.Options.Linger = TimeSpan.Zero;
        // Takes one reply off the connection and then nothing: the kernel buffers fill and the node's queue grows.
        socket.Options.ReceiveHighWatermark = 1;
        socket.Options.ReceiveBuffer = 4096;
        socket.Options.SendHighWatermark = 100_000;
        socket.Connect(endpoint);
        return socket;
    }

    private static SubscriberSocket SilentSubscriber(string endpoint)
    {
        var socket = new SubscriberSocket();
        socket.Options.Linger = TimeSpan.Zero;
        socket.Options.ReceiveHighWatermark = 1;
        socket.Options.ReceiveBuffer = 4096;
        socket.Connect(endpoint);
        socket.Subscribe("registry.node."); // changes only: heartbeats would keep the final drain going
        return socket;
    }

    private static long Served(TestDealer dealer) =>
        dealer.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!.RequestsServed;

    /// <summary>The process's peak resident set size (VmHWM) in bytes.</summary>
    internal static long PeakRssBytes(int pid) => StatusKb(pid, "VmHWM:") * 1024;

    /// <summary>The process's resident set size (VmRSS) in bytes.</summary>
    internal static long RssBytes(int pid) => StatusKb(pid, "VmRSS:") * 1024;

    private static long StatusKb(int pid, string key)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0]);
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms (for what has no event to await, such as a process's RSS), failing after <see cref="Wait"/>.</summary>
    internal static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.GetTimestamp();
        while (!condition())
        {
            if (Stopwatch.GetElapsedTime(deadline) > Wait) Assert.Fail($"timed out after {Wait.TotalSeconds} s waiting for {what}");
            await Task.Delay(50);
        }
    }

    internal static async Task<RunningNode> StartNodeAsync(params string[] extra)
    {
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        var process = NodeProcess.Start(["--endpoint", router, "--pub-endpoint", pub, "--http", "none", "--port-range", pool, "--store", "memory", .. extra]);
        try
        {
            await process.WaitForLineAsync("registry: router", Wait);
        }
        catch
        {
            process.KillIfRunning();
            process.Dispose();
            throw;
        }
        return new RunningNode(process, router, pub);
    }

    internal sealed record RunningNode(NodeProcess Process, string Router, string Pub) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Process.Terminate();
            try
            {
                await Process.WaitForExitAsync(Wait);
            }
            finally
            {
                Process.KillIfRunning();
                Process.Dispose();
            }
        }
    }
}
