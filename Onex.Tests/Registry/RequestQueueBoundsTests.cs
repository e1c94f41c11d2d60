using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Server;

namespace Onex.Tests.Registry;

/// <summary>
/// What one connection can make the node hold in requests it has not read yet (PROTOCOL.md section 14, "requests
/// queued from one peer"): ZeroMQ counts its receive queue in messages, so the bound is the request high-water mark
/// times the receive limit per frame. Measured while the registry thread is held busy, so nothing is read meanwhile:
/// the peer is pushed back by TCP once the queue is full, and the bytes ZeroMQ holds (managed arrays) show in the heap.
/// </summary>
[NonParallelizable] // measures this process's managed heap: keep other fixtures' allocations out of it
public class RequestQueueBoundsTests
{
    private static readonly TimeSpan PushBack = TimeSpan.FromSeconds(5);

    [Test]
    public async Task A_peer_flooding_a_busy_registry_with_large_frames_is_pushed_back_at_the_byte_bound_and_others_are_served_after()
    {
        await using var node = await TestNodes.StartAsync();
        using var good = new TestDealer(node.RouterEndpoint);
        good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });

        var frameBytes = (int)RegistryNodeOptions.Default.MaxReceiveBytes; // the largest frame the node reads
        var bound = PeerBounds.QueuedRequestBytesPerPeer(frameBytes);
        // Beyond the queue: the kernel's socket buffers (loopback autotuning: up to tcp_rmem's 32 MiB and tcp_wmem's
        // 4 MiB on Linux defaults), the frame ZeroMQ is decoding and the one it could not queue.
        const long KernelBuffers = 40L * 1024 * 1024;
        var acceptedBound = bound + 2L * frameBytes + KernelBuffers;
        var sendCap = 3 * bound; // with 1,000 queued frames of 4 MiB (before this bound) all of it was taken

        using var release = new ManualResetEventSlim();
        var busy = node.InvokeAsync(_ => release.Wait(TimeSpan.FromMinutes(2)));
        long accepted = 0, heapGrowth;
        var pushedBack = false;
        try
        {
            var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
            using (var hostile = new RawZmtpPeer(node.RouterEndpoint, "DEALER"))
            {
                var frame = new byte[frameBytes];
                Array.Fill(frame, (byte)'x');
                while (accepted < sendCap)
                {
                    if (!hostile.TrySend(frame, PushBack))
                    {
                        pushedBack = true;
                        break;
                    }
                    accepted += frame.Length;
                }
                heapGrowth = GC.GetTotalMemory(forceFullCollection: true) - heapBefore;
            }
        }
        finally
        {
            release.Set();
            await busy;
        }
        TestContext.Out.WriteLine($"a peer got {accepted / 1048576.0:F1} MiB of {frameBytes}-byte frames into a busy node before TCP pushed back " +
                                  $"(bound {bound / 1048576.0:F1} MiB queued); this process's managed heap grew {heapGrowth / 1048576.0:F1} MiB");
        Assert.That(pushedBack, Is.True, $"the node kept reading {sendCap / 1048576} MiB of requests from one peer while it read none of them");
        Assert.That(accepted, Is.LessThanOrEqualTo(acceptedBound), "the node took more request bytes from one peer than its queue bound and the socket buffers");
        Assert.That(heapGrowth, Is.LessThanOrEqualTo(bound + 2L * frameBytes + 16L * 1024 * 1024), "the node held more of one peer's requests than the bound");

        // The registry reads the queue (each frame over 1 MiB is TOO_LARGE) and answers everyone else as before.
        Assert.That(good.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));
    }
}
