using System.Buffers;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Protocol;

public class RegistryCodecTests
{
    private static readonly PortRequest Request = new()
    {
        NodeId = "billing-worker-1", Count = 2, TtlMs = 45000, PreferredPort = 21003, Protocol = PortProtocols.Tcp, Purpose = "http",
    };

    /// <summary>Writes a map; byte[] values are embedded as raw MessagePack (for bodies), others serialized (nil for null).</summary>
    private static byte[] Map(params (string Key, object? Value)[] entries)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(entries.Length);
        foreach (var (key, value) in entries)
        {
            writer.Write(key);
            if (value is byte[] raw) writer.WriteRaw(raw);
            else MessagePackSerializer.Serialize(ref writer, value, MessagePackSerializerOptions.Standard);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static (string, object?)[] EnvelopeEntries(byte[]? body = null) =>
    [
        ("protocolVersion", 1), ("messageType", "PortRequest"), ("requestId", "r-1"), ("clientId", "c-1"),
        ("body", body ?? RegistryCodec.SerializeBody(Request)),
    ];

    private static byte[] EnvelopeWith(string key, object? value) =>
        Map(EnvelopeEntries().Select(e => e.Item1 == key ? (key, value) : e).ToArray());

    private static byte[] EnvelopeWithout(string key) => Map(EnvelopeEntries().Where(e => e.Item1 != key).ToArray());

    [Test]
    public void Encoded_envelope_decodes_to_the_same_ids_and_body()
    {
        var envelope = RegistryCodec.Decode(RegistryCodec.Encode("r-42", "billing-worker-1/7f3a", Request));

        Assert.Multiple(() =>
        {
            Assert.That(envelope.ProtocolVersion, Is.EqualTo(ProtocolVersion.Current));
            Assert.That(envelope.MessageType, Is.EqualTo("PortRequest"));
            Assert.That(envelope.RequestId, Is.EqualTo("r-42"));
            Assert.That(envelope.ClientId, Is.EqualTo("billing-worker-1/7f3a"));
            Assert.That(envelope.BodyAs<PortRequest>(), Is.EqualTo(Request));
        });
    }

    [Test]
    public void Envelope_keys_may_come_in_any_order_and_unknown_keys_are_ignored()
    {
        var frame = Map([("traceId", "t-9"), .. EnvelopeEntries().Reverse(), ("extra", new[] { 1, 2, 3 })]);

        var envelope = RegistryCodec.Decode(frame);

        Assert.That((envelope.RequestId, envelope.BodyAs<PortRequest>().NodeId), Is.EqualTo(("r-1", "billing-worker-1")));
    }

    [Test]
    public void Decode_leaves_the_version_check_to_the_receiver()
    {
        // The registry answers UNSUPPORTED_VERSION itself, which needs the ids that Decode returns.
        var envelope = RegistryCodec.Decode(EnvelopeWith("protocolVersion", 2));

        Assert.That((envelope.ProtocolVersion, envelope.RequestId), Is.EqualTo((2, "r-1")));
    }

    [TestCase(new byte[0], TestName = "Empty frame is malformed")]
    [TestCase(new byte[] { 0xc0 }, TestName = "Nil frame is malformed")]
    [TestCase(new byte[] { 0x92, 0x01, 0x02 }, TestName = "Array frame is malformed")]
    [TestCase(new byte[] { 0xa3, 0x61, 0x62, 0x63 }, TestName = "String frame is malformed")]
    [TestCase(new byte[] { 0x81, 0x01, 0x02 }, TestName = "Integer envelope key is malformed")]
    [TestCase(new byte[] { 0x85, 0xaf }, TestName = "Frame cut inside a key is malformed")]
    [TestCase(new byte[] { 0xc1 }, TestName = "Never-used MessagePack code is malformed")]
    public void Malformed_frame_is_rejected(byte[] frame) =>
        Assert.That(() => RegistryCodec.Decode(frame), Throws.TypeOf<MalformedMessageException>());

    [Test]
    public void Length_header_beyond_the_end_of_the_frame_is_malformed()
    {
        // An unknown key whose value claims to be a bin32 of almost 4 GiB: skipping it must fail as MALFORMED.
        var frame = Map([.. EnvelopeEntries(), ("x", new byte[] { 0xc6, 0xff, 0xff, 0xff, 0x00, 0x01 })]);

        var ex = Assert.Throws<MalformedMessageException>(() => RegistryCodec.Decode(frame));

        Assert.That(ex!.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [TestCase("protocolVersion")]
    [TestCase("messageType")]
    [TestCase("requestId")]
    [TestCase("clientId")]
    [TestCase("body")]
    public void Missing_envelope_field_is_malformed_and_named(string key) =>
        Assert.That(() => RegistryCodec.Decode(EnvelopeWithout(key)),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("missing").WithValue(key));

    [TestCase("protocolVersion", "1")]
    [TestCase("messageType", 7)]
    [TestCase("requestId", 12345)]
    [TestCase("clientId", false)]
    public void Envelope_field_of_the_wrong_type_is_malformed_and_named(string key, object value) =>
        Assert.That(() => RegistryCodec.Decode(EnvelopeWith(key, value)),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue(key));

    [Test]
    public void Protocol_version_beyond_int32_is_malformed() =>
        Assert.That(() => RegistryCodec.Decode(EnvelopeWith("protocolVersion", long.MaxValue)), Throws.TypeOf<MalformedMessageException>());

    [TestCase("requestId")]
    [TestCase("clientId")]
    public void Empty_id_in_a_request_is_malformed(string key) =>
        Assert.That(() => RegistryCodec.Decode(EnvelopeWith(key, "")),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("missing").WithValue(key));

    [Test]
    public void Error_reply_to_an_unreadable_request_may_carry_empty_ids()
    {
        var error = new Error { Code = ErrorCodes.Malformed, Message = "A frame must be a MessagePack map." };

        var envelope = RegistryCodec.Decode(RegistryCodec.Encode("", "", error));

        Assert.That((envelope.RequestId, envelope.ClientId, envelope.BodyAs<Error>().Code), Is.EqualTo(("", "", ErrorCodes.Malformed)));
    }

    [Test]
    public void Trailing_bytes_after_the_envelope_are_malformed_but_keep_the_ids()
    {
        var frame = RegistryCodec.Encode("r-7", "c-7", Request).Append((byte)0x01).ToArray();

        var ex = Assert.Throws<MalformedMessageException>(() => RegistryCodec.Decode(frame));

        Assert.That(ex!.Details, Does.ContainKey("requestId").WithValue("r-7"));
    }

    [Test]
    public void Request_id_read_before_a_broken_body_survives_into_the_details()
    {
        var frame = RegistryCodec.Encode("r-8", "c-8", Request);
        var truncated = frame.AsMemory(0, frame.Length - 3);

        var ex = Assert.Throws<MalformedMessageException>(() => RegistryCodec.Decode(truncated));

        Assert.That(ex!.Details, Does.ContainKey("requestId").WithValue("r-8"));
        Assert.That(ex.Details, Does.ContainKey("clientId").WithValue("c-8"));
    }

    [Test]
    public void Request_id_survives_when_another_envelope_field_is_missing()
    {
        var ex = Assert.Throws<MalformedMessageException>(() => RegistryCodec.Decode(EnvelopeWithout("messageType")));

        Assert.That(ex!.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [Test]
    public void Frame_over_the_limit_is_too_large_and_keeps_the_readable_ids()
    {
        var hugeBody = RegistryCodec.SerializeBody(Request with { Purpose = new string('x', RegistryCodec.MaxFrameBytes) });
        var frame = Map(EnvelopeEntries(hugeBody));

        var ex = Assert.Throws<MessageTooLargeException>(() => RegistryCodec.Decode(frame));

        Assert.That(ex!.Details, Does.ContainKey("limit").WithValue(RegistryCodec.MaxFrameBytes.ToString()));
        Assert.That(ex.Details, Does.ContainKey("size").WithValue(frame.Length.ToString()));
        Assert.That(ex.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [Test]
    public void Oversized_garbage_is_too_large_without_ids()
    {
        var ex = Assert.Throws<MessageTooLargeException>(() => RegistryCodec.Decode(new byte[RegistryCodec.MaxFrameBytes + 1]));

        Assert.That(ex!.Details, Does.Not.ContainKey("requestId"));
    }

    [Test]
    public void Reply_over_the_request_limit_decodes_with_the_reply_limit()
    {
        var leases = Enumerable.Range(0, 6000).Select(i => new PortLease
        {
            LeaseId = $"lease-{i:D8}", Port = 20000 + i, Host = "127.0.0.1", NodeId = "node-" + i, TtlMs = 30000, FencingToken = i + 1,
            Purpose = "a purpose long enough to make six thousand leases weigh more than a mebibyte",
        }).ToArray();
        var frame = RegistryCodec.Encode("r-9", "c-9", new RegistrySnapshot { Epoch = "e", Sequence = 6000, Leases = leases });
        Assert.That(frame.Length, Is.GreaterThan(RegistryCodec.MaxFrameBytes), "the snapshot must exceed the request limit for this test");

        var envelope = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);

        Assert.That(envelope.BodyAs<RegistrySnapshot>().Leases, Has.Count.EqualTo(6000));
        Assert.That(() => RegistryCodec.Decode(frame), Throws.TypeOf<MessageTooLargeException>(), "with the request limit it is too large");
    }

    [Test]
    public void Body_that_is_not_a_map_is_malformed_with_the_request_id()
    {
        var envelope = RegistryCodec.Decode(Map(EnvelopeEntries(MessagePackSerializer.Serialize(new[] { "billing-worker-1" }))));

        var ex = Assert.Throws<MalformedMessageException>(() => envelope.BodyAs<PortRequest>());

        Assert.That(ex!.Details, Does.ContainKey("field").WithValue("body"));
        Assert.That(ex.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [Test]
    public void Nil_body_is_malformed()
    {
        var envelope = RegistryCodec.Decode(Map(EnvelopeEntries([0xc0])));

        Assert.That(() => envelope.BodyAs<PortRequest>(), Throws.TypeOf<MalformedMessageException>());
    }

    [Test]
    public void Body_field_of_the_wrong_type_is_malformed_with_the_request_id()
    {
        var body = Map(("nodeId", "billing-worker-1"), ("count", "three"));
        var envelope = RegistryCodec.Decode(Map(EnvelopeEntries(body)));

        var ex = Assert.Throws<MalformedMessageException>(() => envelope.BodyAs<PortRequest>());

        Assert.That(ex!.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [Test]
    public void Body_integer_out_of_range_is_malformed()
    {
        var body = Map(("nodeId", "billing-worker-1"), ("count", long.MaxValue));

        Assert.That(() => RegistryCodec.DeserializeBody<PortRequest>(body), Throws.TypeOf<MalformedMessageException>());
    }

    [Test]
    public void Body_missing_a_required_string_is_malformed_and_names_it()
    {
        var envelope = RegistryCodec.Decode(Map(EnvelopeEntries(Map(("count", 1)))));

        var ex = Assert.Throws<MalformedMessageException>(() => envelope.BodyAs<PortRequest>());

        Assert.That(ex!.Details, Does.ContainKey("field").WithValue("body.nodeId"));
        Assert.That(ex.Details, Does.ContainKey("requestId").WithValue("r-1"));
    }

    [Test]
    public void Body_with_nil_for_a_non_nullable_field_is_malformed_and_names_it()
    {
        var body = Map(("code", "FENCED"), ("message", "m"), ("details", null));

        Assert.That(() => RegistryCodec.DeserializeBody<Error>(body),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue("body.details"));
    }

    [Test]
    public void Nil_list_element_is_malformed_and_names_its_index()
    {
        var lease = RegistryCodec.SerializeBody(new PortLease { LeaseId = "l", Host = "127.0.0.1", NodeId = "n", Port = 21000 });
        var body = Map(("leases", new object?[] { MessagePackSerializer.Deserialize<object>(lease), null }));

        Assert.That(() => RegistryCodec.DeserializeBody<PortGrant>(body),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue("body.leases[1]"));
    }

    [Test]
    public void Nil_inside_a_nested_object_is_malformed_and_names_the_path()
    {
        var lease = Map(("leaseId", "l"), ("host", null), ("nodeId", "n"));
        var body = Map(("epoch", "e"), ("sequence", 1), ("changeType", "lease.granted"), ("key", "l"),
            ("newValue", Map(("lease", lease))));

        Assert.That(() => RegistryCodec.DeserializeBody<RegistryChange>(body),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue("body.newValue.lease.host"));
    }

    [Test]
    public void Nil_map_value_is_malformed_and_names_the_key()
    {
        var body = Map(("code", "FENCED"), ("message", "m"), ("details", new Dictionary<string, string?> { ["leaseId"] = null }));

        Assert.That(() => RegistryCodec.DeserializeBody<Error>(body),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue("body.details.leaseId"));
    }

    [Test]
    public void Nil_for_a_nullable_field_is_accepted()
    {
        var body = Map(("nodeId", "n"), ("ttlMs", null), ("preferredPort", null), ("purpose", null), ("futureKey", null));

        var request = RegistryCodec.DeserializeBody<PortRequest>(body);

        Assert.That((request.TtlMs, request.PreferredPort, request.Purpose, request.Count), Is.EqualTo(((long?)null, (int?)null, (string?)null, 1)));
    }

    [Test]
    public void Absent_optional_fields_take_their_defaults()
    {
        var request = RegistryCodec.DeserializeBody<PortRequest>(Map(("nodeId", "n")));

        Assert.That((request.Count, request.Protocol, request.Reclaim), Is.EqualTo((1, PortProtocols.Both, false)));
    }

    [Test]
    public void Body_with_trailing_bytes_is_malformed() =>
        Assert.That(() => RegistryCodec.DeserializeBody<NodeHeartbeat>(RegistryCodec.SerializeBody(new NodeHeartbeat { NodeId = "n" }).Append((byte)0xc0).ToArray()),
            Throws.TypeOf<MalformedMessageException>());

    [Test]
    public void Body_of_another_message_type_is_malformed_when_its_required_fields_are_missing()
    {
        var envelope = RegistryCodec.Decode(Map(EnvelopeEntries(RegistryCodec.SerializeBody(new Ack()))));

        Assert.That(() => envelope.BodyAs<PortRequest>(), Throws.TypeOf<MalformedMessageException>()
            .With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue("body.nodeId"));
    }
}
