using System.Diagnostics;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>
/// A peer that starts a multipart message and does not finish it yet (PROTOCOL.md section 14): ZeroMQ (NetMQ) reads its
/// frames into the node's memory for that connection, where the registry cannot see them, and counts its high-water
/// marks in whole messages only. Under the node's bound on received bytes (<see cref="Onex.RegistryNode.Server.PeerBounds.ReceivedBytesTotal"/>,
/// past which every connection is closed: <see cref="ReceivedBytesBoundTests"/>) this pins the documented behaviour: held
/// in proportion to what was sent, other clients answered meanwhile, and the message answered once it is finished.
/// </summary>
public class UnfinishedMultipartTests
{
    private const int FrameBytes = 1024 * 1024; // under the 4 MiB frame limit, which is per frame
    private const int Frames = 32;

    [Test]
    public async Task An_unfinished_multipart_message_is_held_for_its_connection_until_finished_while_others_are_answered()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var good = new TestDealer(node.Router);
        good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        var rssBefore = PeerBoundsTests.RssBytes(node.Process.Id);

        // A raw ZMTP peer: a NetMQ DEALER sends nothing of a message until its last frame.
        using var hostile = new RawZmtpPeer(node.Router, "DEALER");
        var frame = new byte[FrameBytes];
        Array.Fill(frame, (byte)'x');
        for (var i = 0; i < Frames; i++) hostile.Send(frame, more: true); // MORE set on every frame: never finished
        hostile.Flush();

        // The frames reach the node and stay there: no queue bound counts them (32 MiB sent, 3/4 of it must show).
        long growth = 0;
        await PeerBoundsTests.WaitUntilAsync(
            () => (growth = PeerBoundsTests.RssBytes(node.Process.Id) - rssBefore) >= Frames * (long)FrameBytes * 3 / 4,
            $"the node's RSS to grow by 3/4 of {Frames} MiB of unfinished frames (under the received-bytes bound they are held)");
        TestContext.Out.WriteLine($"RSS grew by {growth / 1048576.0:F1} MiB for {Frames} MiB of frames of an unfinished message");

        // Meanwhile a well-behaved client is answered as usual.
        var asked = Stopwatch.GetTimestamp();
        good.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = "n1" });
        Assert.That(Stopwatch.GetElapsedTime(asked), Is.LessThan(TimeSpan.FromSeconds(5)), "a well-behaved client waited while a peer held a message open");

        // Finished, the message reaches the registry as one message of 33 frames. The first reply the peer gets is the
        // MALFORMED for it (bad framing): nothing answered, or saw, the message while it was unfinished.
        hostile.Send(RegistryCodec.Encode("u1", "hostile", new NodeHeartbeat { NodeId = "n1" }));
        var (reply, more) = hostile.ReadFrame(TestDealer.ReplyTimeout);
        Assert.That(more, Is.False, "a reply must be exactly one frame");
        var error = RegistryCodec.DecodeBody<Error>(TestDealer.DecodeReply(reply));
        Assert.That((error.Code, error.Details.GetValueOrDefault("reason"), error.Details.GetValueOrDefault("frames")),
            Is.EqualTo((ErrorCodes.Malformed, "frames", (Frames + 1).ToString())), error.Message);
    }
}
