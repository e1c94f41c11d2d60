using System.Buffers;
using Microsoft.Extensions.Time.Testing;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>Bad input over a real socket: an Error reply with the right code, no state change, and the node keeps serving.</summary>
public class BadInputTests
{
    public sealed record BadInput(string Name, Func<string, byte[][]> Frames, string[] Codes, string? Field = null, bool EchoesRequestId = false, string? Reason = null)
    {
        public override string ToString() => Name;
    }

    private static readonly BadInput[] Cases =
    [
        new("random bytes", _ => [RandomBytes(64)], [ErrorCodes.Malformed]),
        new("truncated MessagePack", c => [Valid(c)[..^7]], [ErrorCodes.Malformed]),
        new("a frame that is not a map", _ => [[0x93, 0x01, 0x02, 0x03]], [ErrorCodes.Malformed]),
        new("wrong field type", c => [Envelope(c, "PortRequest", (ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("nodeId"); w.Write("n1"); w.Write("count"); w.Write("three"); })],
            [ErrorCodes.Malformed], "count", EchoesRequestId: true),
        new("missing required field", c => [Envelope(c, "PortRequest", (ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("count"); w.Write(1); })],
            [ErrorCodes.Malformed, ErrorCodes.InvalidArgument], "nodeId", EchoesRequestId: true),
        new("body that is not a map", c => [Envelope(c, "PortRequest", (ref MessagePackWriter w) => w.Write(5))], [ErrorCodes.Malformed], EchoesRequestId: true),
        new("unknown message type", c => [Envelope(c, "Teleport", (ref MessagePackWriter w) => { w.WriteMapHeader(0); })], [ErrorCodes.UnknownMessageType], EchoesRequestId: true),
        new("a reply type sent as a request", c => [Envelope(c, "PortGrant", (ref MessagePackWriter w) => { w.WriteMapHeader(0); })], [ErrorCodes.UnknownMessageType], EchoesRequestId: true),
        new("unknown protocol version", c => [RegistryCodec.Encode("bad-1", c, new PortRequest { NodeId = "n1" }, protocolVersion: 2)],
            [ErrorCodes.UnsupportedVersion], EchoesRequestId: true),
        new("oversized frame", c => [RegistryCodec.Encode("bad-1", c, new PortRequest { NodeId = "n1", Purpose = new string('x', RegistryCodec.MaxFrameBytes + 1000) })],
            [ErrorCodes.TooLarge], EchoesRequestId: true),
        new("two frames", c => [Valid(c), Valid(c)], [ErrorCodes.Malformed], Reason: "frames"),
        new("out-of-range value", c => [RegistryCodec.Encode("bad-1", c, new PortRequest { NodeId = "n1", Count = 0 })],
            [ErrorCodes.InvalidArgument], "count", EchoesRequestId: true),
    ];

    [TestCaseSource(nameof(Cases))]
    public async Task Bad_input_gets_an_error_reply_and_changes_nothing(BadInput input)
    {
        // A clock that never moves: nothing expires and no stall is detected between the two snapshots, so only the
        // request could change the state.
        await using var host = await TestNodes.StartAsync(time: new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000)));
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n0" }); // some state to keep
        var before = dealer.StateBytes();

        dealer.SendFrames(input.Frames(dealer.ClientId));
        var reply = TestDealer.DecodeReply(dealer.ReceiveFrame());

        var error = TestDealer.ExpectError(reply);
        Assert.That(input.Codes, Does.Contain(error.Code), $"wrong code for {input.Name}: {error.Message}");
        Assert.That(error.Message, Is.Not.Empty);
        if (input.Field is not null) Assert.That(error.Details["field"], Does.EndWith(input.Field), error.Message);
        if (input.Reason is not null) Assert.That(error.Details["reason"], Is.EqualTo(input.Reason), error.Message);
        if (input.EchoesRequestId) Assert.That(reply.RequestId, Is.EqualTo("bad-1"), "the error reply should carry the request id it answers");
        Assert.That(dealer.StateBytes(), Is.EqualTo(before), "bad input changed the registry's state");
        Assert.That(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1), "the node stopped serving after bad input");
    }

    [Test]
    public async Task An_empty_frame_alone_gets_malformed_behind_an_empty_delimiter()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.SendFrames(Array.Empty<byte>());

        var frames = dealer.ReceiveFrames();

        Assert.That(frames, Has.Count.EqualTo(2), "the reply mirrors the framing: [empty][Error]");
        Assert.That(frames[0], Is.Empty);
        var error = TestDealer.ExpectError(TestDealer.DecodeReply(frames[1]));
        Assert.That((error.Code, error.Details["reason"]), Is.EqualTo((ErrorCodes.Malformed, "frames")));
    }

    [Test]
    public async Task A_frame_over_the_receive_limit_drops_only_that_connection()
    {
        await using var host = await TestNodes.StartAsync(o => o with { MaxReceiveBytes = 2 * 1024 * 1024 });
        using (var abuser = new TestDealer(host.RouterEndpoint))
        {
            abuser.SendFrames(new byte[3 * 1024 * 1024]);
        }
        using var dealer = new TestDealer(host.RouterEndpoint);
        Assert.That(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));
    }

    private static byte[] Valid(string clientId) => RegistryCodec.Encode("bad-1", clientId, new PortRequest { NodeId = "n1" });

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(7).NextBytes(bytes);
        bytes[0] = 0xC1; // never used in MessagePack
        return bytes;
    }

    /// <summary>An envelope with a hand-written body, for bodies the C# types cannot produce.</summary>
    private static byte[] Envelope(string clientId, string messageType, BodyWriter writeBody)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(5);
        writer.Write("protocolVersion");
        writer.Write(ProtocolVersion.Current);
        writer.Write("messageType");
        writer.Write(messageType);
        writer.Write("requestId");
        writer.Write("bad-1");
        writer.Write("clientId");
        writer.Write(clientId);
        writer.Write("body");
        writer.Flush();
        var bodyWriter = new MessagePackWriter(buffer);
        writeBody(ref bodyWriter);
        bodyWriter.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private delegate void BodyWriter(ref MessagePackWriter writer);
}
