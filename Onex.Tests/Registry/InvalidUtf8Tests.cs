using System.Text;
using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>
/// MessagePack strings are UTF-8 (PROTOCOL.md 2.1): a request with a string that is not, anywhere, is MALFORMED naming
/// the field with reason <c>invalidUtf8</c>, never acted on with U+FFFD in its place, and changes nothing.
/// </summary>
public class InvalidUtf8Tests
{
    // Every case carries this marker in one string; the test turns its first byte into 0xFF, which UTF-8 never uses.
    private const string Marker = "UTF8BAD";
    private const byte InvalidByte = 0xFF;

    public sealed record Case(string Name, Func<string, byte[]> Frame, string Field, bool RequestIdEchoed = true)
    {
        public override string ToString() => Name;
    }

    private static byte[] Request<T>(string clientId, T body, string requestId = "u-1", string? token = null) =>
        RegistryCodec.Encode(requestId, clientId, body, token: token);

    private static readonly Case[] Cases =
    [
        // One string of the body of every request kind.
        new("PortRequest purpose", c => Request(c, new PortRequest { NodeId = "n1", Purpose = "for " + Marker }), "body.purpose"),
        new("LeaseRenewal leaseId", c => Request(c, new LeaseRenewal { LeaseId = Marker, NodeId = "n1", FencingToken = 1 }), "body.leaseId"),
        new("LeaseRelease nodeId", c => Request(c, new LeaseRelease { LeaseId = "lease-1", NodeId = Marker, FencingToken = 1 }), "body.nodeId"),
        new("PortConflict reason", c => Request(c, new PortConflict { LeaseId = "lease-1", NodeId = "n1", FencingToken = 1, Reason = Marker }), "body.reason"),
        new("NodeAnnouncement metadata key", c => Request(c, new NodeAnnouncement { NodeId = "n2", Metadata = new Dictionary<string, string> { ["zone"] = "a", [Marker] = "v" } }),
            "body.metadata.\uFFFD" + Marker[1..]),
        new("NodeAnnouncement metadata value", c => Request(c, new NodeAnnouncement { NodeId = "n2", Metadata = new Dictionary<string, string> { ["zone"] = Marker } }),
            "body.metadata.zone"),
        new("NodeHeartbeat nodeId", c => Request(c, new NodeHeartbeat { NodeId = Marker }), "body.nodeId"),
        new("NodeDeparture nodeId", c => Request(c, new NodeDeparture { NodeId = Marker }), "body.nodeId"),
        new("EventBusRegistration endpoint", c => Request(c, new EventBusRegistration { Name = "b", Kind = "zmq", Endpoints = ["tcp://127.0.0.1:1", "tcp://" + Marker], NodeId = "n1" }),
            "body.endpoints[1]"),
        new("EventBusDeregistration name", c => Request(c, new EventBusDeregistration { Name = Marker, NodeId = "n1" }), "body.name"),
        new("ToolContractRegistration schema text", c => Request(c, new ToolContractRegistration
        {
            Name = "t", Version = "1.0.0", NodeId = "n1", InputSchema = $$"""{"type":"object","description":"{{Marker}}"}""", OutputSchema = "{}",
        }), "body.inputSchema"),
        new("ToolContractRegistration error code", c => Request(c, new ToolContractRegistration
        {
            Name = "t", Version = "1.0.0", NodeId = "n1", InputSchema = "{}", OutputSchema = "{}", ErrorCodes = [new ToolErrorCode { Code = "A", Description = Marker }],
        }), "body.errorCodes[0].description"),
        new("ValidatePayload payload", c => Request(c, new ValidatePayload { ToolName = "t", Payload = $$"""{"a":"{{Marker}}"}""" }), "body.payload"),
        new("IntrospectionRequest include", c => Request(c, new IntrospectionRequest { Include = ["leases", Marker] }), "body.include[1]"),
        new("SnapshotRequest note", c => Request(c, new SnapshotRequest { Note = Marker }), "body.note"),
        // The envelope's strings.
        new("envelope messageType", c => Patch(Request(c, new NodeHeartbeat { NodeId = "n1" }), "NodeHeartbeat", Marker), "messageType"),
        new("envelope requestId", c => Request(c, new NodeHeartbeat { NodeId = "n1" }, requestId: Marker), "requestId", RequestIdEchoed: false),
        new("envelope clientId", c => Request(Marker, new NodeHeartbeat { NodeId = "n1" }), "clientId"),
        new("envelope token", c => Request(c, new NodeHeartbeat { NodeId = "n1" }, token: Marker), "token"),
    ];

    [TestCaseSource(nameof(Cases))]
    public async Task A_string_that_is_not_utf8_is_malformed_naming_the_field_and_changes_nothing(Case input)
    {
        // A clock that never moves: nothing expires and no stall is detected between the two snapshots, so only the
        // request could change the state.
        await using var host = await TestNodes.StartAsync(time: new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000)));
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" });
        var before = dealer.StateBytes();

        dealer.SendFrames(Corrupt(input.Frame(dealer.ClientId)));
        var reply = TestDealer.DecodeReply(dealer.ReceiveFrame());

        var error = TestDealer.ExpectError(reply);
        Assert.That((error.Code, error.Details.GetValueOrDefault("field"), error.Details.GetValueOrDefault("reason")),
            Is.EqualTo((ErrorCodes.Malformed, input.Field, "invalidUtf8")), error.Message);
        Assert.That(reply.RequestId, Is.EqualTo(input.RequestIdEchoed ? "u-1" : ""),
            "a readable request id is echoed; one that is not UTF-8 cannot be");
        Assert.That(dealer.StateBytes(), Is.EqualTo(before), "a request with an invalid string changed the registry's state");
    }

    [Test]
    public async Task An_unknown_envelope_key_with_an_invalid_string_is_malformed_too()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        var frame = Request(dealer.ClientId, new PortRequest { NodeId = "n1" });
        // Append a sixth key ("extra": [Marker]) to the five-key envelope map (fixmap header 0x85).
        Assert.That(frame[0], Is.EqualTo(0x85), "the encoder's envelope is a fixmap of five keys");
        var extra = new List<byte> { 0xA5 };
        extra.AddRange("extra"u8.ToArray());
        extra.Add(0x91);
        extra.Add((byte)(0xA0 | Marker.Length));
        extra.AddRange(Encoding.UTF8.GetBytes(Marker));
        byte[] patched = [0x86, .. frame.AsSpan(1), .. extra];

        dealer.SendFrames(Corrupt(patched));
        var error = TestDealer.ExpectError(TestDealer.DecodeReply(dealer.ReceiveFrame()));

        Assert.That((error.Code, error.Details.GetValueOrDefault("field")), Is.EqualTo((ErrorCodes.Malformed, "extra[0]")), error.Message);
        Assert.That(dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Leases, Is.Empty, "nothing was granted");
    }

    [Test]
    public void A_valid_multibyte_string_still_decodes()
    {
        var frame = Request("c", new PortRequest { NodeId = "n1", Purpose = "caf\u00e9 \U0001F600" });
        var body = RegistryCodec.Decode(frame).BodyAs<PortRequest>();
        Assert.That(body.Purpose, Is.EqualTo("caf\u00e9 \U0001F600"));
    }

    [Test]
    public void Checking_a_valid_body_allocates_nothing()
    {
        // Every string a request carries (keys and values, nested) is checked; a valid one is not decoded to a string.
        var body = RegistryCodec.SerializeBody(new NodeAnnouncement
        {
            NodeId = "node-a", Name = "caf\u00e9 \U0001F600", Host = "127.0.0.1", ProcessId = 42,
            Metadata = new Dictionary<string, string> { ["team"] = "payments", ["region"] = "eu", ["version"] = "2.4.1" },
        });
        Onex.Protocol.Utf8Strings.EnsureValid(body, "body"); // warm-up: JIT and first-call allocations
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++) Onex.Protocol.Utf8Strings.EnsureValid(body, "body");

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void An_invalid_string_under_a_key_is_named_by_the_key()
    {
        var body = RegistryCodec.SerializeBody(new Dictionary<string, object> { ["outer"] = new Dictionary<string, string> { ["inner"] = "ok", ["bad"] = "xx" } });
        var at = body.AsSpan().IndexOf("xx"u8);
        body[at] = 0xC3; // a lead byte followed by an ASCII byte: not UTF-8
        var reader = new MessagePack.MessagePackReader(body);

        Assert.That(Onex.Protocol.Utf8Strings.FindInvalid(ref reader), Is.EqualTo(".outer.bad"));
    }

    private static byte[] Patch(byte[] frame, string from, string to)
    {
        Assert.That(to.Length, Is.LessThanOrEqualTo(from.Length));
        var text = Encoding.UTF8.GetBytes(from);
        var index = frame.AsSpan().IndexOf(text);
        Assert.That(index, Is.GreaterThan(0), $"'{from}' is not in the frame");
        // Same length keeps the str header right: pad the replacement with spaces.
        var replacement = Encoding.UTF8.GetBytes(to.PadRight(from.Length));
        replacement.CopyTo(frame, index);
        return frame;
    }

    private static byte[] Corrupt(byte[] frame)
    {
        var index = frame.AsSpan().IndexOf(Encoding.UTF8.GetBytes(Marker));
        Assert.That(index, Is.GreaterThan(0), "the marker is not in the frame");
        frame[index] = InvalidByte;
        return frame;
    }
}
