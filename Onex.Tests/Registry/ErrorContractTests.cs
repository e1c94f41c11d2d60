using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>Places where the registry and <c>contracts/</c> disagreed (issue 10), each settled as PROTOCOL.md now says.</summary>
public class ErrorContractTests
{
    private const string Emoji = "\U0001F600"; // one character, two UTF-16 units

    private static RegistryEnvelope Dispatch(RegistryHarness h, byte[] frame) => TestDealer.DecodeReply(h.Dispatcher.Dispatch(frame));

    [TestCase("requestId")]
    [TestCase("clientId")]
    public void An_id_longer_than_256_characters_is_malformed_and_not_echoed(string field)
    {
        using var h = new RegistryHarness();
        var longId = new string('r', 257);
        var frame = field == "requestId"
            ? RegistryCodec.Encode(longId, "c", new PortRequest { NodeId = "n1" })
            : RegistryCodec.Encode("r1", longId, new PortRequest { NodeId = "n1" });

        var reply = Dispatch(h, frame);

        var error = TestDealer.ExpectError(reply);
        Assert.That((error.Code, error.Details["field"], error.Details["reason"]), Is.EqualTo((ErrorCodes.Malformed, field, "tooLong")));
        Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("", "")), "an id the schema forbids must not be echoed");
        Assert.That(h.Registry.Leases.Count, Is.Zero);
    }

    [Test]
    public void Lengths_are_counted_in_characters_as_the_schemas_max_length_does()
    {
        using var h = new RegistryHarness();
        var requestId = string.Concat(Enumerable.Repeat(Emoji, 256)); // 256 characters, 512 UTF-16 units
        var purpose = string.Concat(Enumerable.Repeat(Emoji, 600));   // 600 characters, within maxLength 1024

        var reply = Dispatch(h, RegistryCodec.Encode(requestId, "c", new PortRequest { NodeId = "n1", Purpose = purpose }));

        Assert.That(TestDealer.Expect<PortGrant>(reply).Leases, Has.Count.EqualTo(1));
        Assert.That(reply.RequestId, Is.EqualTo(requestId));
        var tooLong = h.Fails(r => r.Handle(new PortRequest { NodeId = "n1", Purpose = string.Concat(Enumerable.Repeat(Emoji, 1025)) }));
        Assert.That(tooLong.Details["field"], Is.EqualTo("purpose"));
    }

    [Test]
    public void Trailing_bytes_are_malformed_with_their_count()
    {
        using var h = new RegistryHarness();
        var frame = RegistryCodec.Encode("r1", "c", new PortRequest { NodeId = "n1" }).Concat(new byte[] { 0xC0, 0xC0 }).ToArray();

        var reply = Dispatch(h, frame);

        var error = TestDealer.ExpectError(reply);
        Assert.That(error.Code, Is.EqualTo(ErrorCodes.Malformed));
        Assert.That(error.Details["trailingBytes"], Is.EqualTo("2"));
        Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("r1", "c")));
    }

    [Test]
    public void A_type_error_at_the_root_of_a_payload_has_the_path_of_the_root()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = "5" }));
        Assert.That(result.Errors.Where(e => e.Kind == "ObjectExpected").Select(e => e.Path), Is.EqualTo(new[] { "#" }));
    }

    [Test]
    public void A_tool_error_code_longer_than_128_characters_is_invalid_argument()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var registration = ToolContracts.Registration("tool-a") with { ErrorCodes = [new ToolErrorCode { Code = "A" + new string('B', 128) }] };
        var ex = h.Fails(r => r.Handle(registration));
        Assert.That((ex.Code, ex.Details["field"]), Is.EqualTo((ErrorCodes.InvalidArgument, "errorCodes")));

        var longest = ToolContracts.Registration("tool-a") with { ErrorCodes = [new ToolErrorCode { Code = "A" + new string('B', 127) }] };
        Assert.That(h.Do(r => r.Handle(longest)).ErrorCodes.Single().Code, Has.Length.EqualTo(128));
    }

    [Test]
    public void A_port_conflict_reason_longer_than_1024_characters_is_invalid_argument_and_changes_nothing()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease();
        var ex = h.Fails(r => r.Handle(new PortConflict { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken, Reason = new string('x', 2000) }));
        Assert.That((ex.Code, ex.Details["field"]), Is.EqualTo((ErrorCodes.InvalidArgument, "reason")));
        Assert.That(h.Registry.Leases.Count, Is.EqualTo(1));
    }
}
