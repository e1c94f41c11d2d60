using System.Buffers;
using MessagePack;
using Onex.Errors;
using Onex.Events;

namespace Onex.Tests.Events;

public class OnexEventCodecTests
{
    private static readonly OnexEventCodec SmallCodec = new(new EventCodecLimits { MaxPayloadBytes = 64, MaxFrameBytes = 512 });

    private static OnexEvent SampleEvent() => new()
    {
        EventId = "0193f5a2c7e87b3e9d1c4f6a8b2d0e11",
        Topic = "billing.invoice.paid",
        EventType = "InvoicePaid",
        SourceNodeId = "billing-worker-1",
        CorrelationId = "req-77",
        Timestamp = 1767225600123,
        Headers = new Dictionary<string, string> { ["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
        Payload = new byte[] { 0x82, 0xa2, 0x69, 0x64, 0x01, 0xa1, 0x78, 0xc3, 0x00, 0xff },
    };

    /// <summary>Writes a map with the given entries; values are written by <see cref="MessagePackSerializer"/> (nil for null).</summary>
    private static byte[] Map(params (string Key, object? Value)[] entries)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(entries.Length);
        foreach (var (key, value) in entries)
        {
            writer.Write(key);
            if (value is byte[] bytes) writer.Write(bytes);
            else MessagePackSerializer.Serialize(ref writer, value, MessagePackSerializerOptions.Standard);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static (string, object?)[] ValidEntries() =>
    [
        ("eventId", "e-1"), ("topic", "a.b"), ("eventType", "t"), ("sourceNodeId", "n"), ("correlationId", null),
        ("timestamp", 1767225600000L), ("schemaVersion", 1), ("headers", new Dictionary<string, string>()), ("payload", new byte[] { 1, 2 }),
    ];

    private static byte[] MapWith(string key, object? value) =>
        Map(ValidEntries().Select(e => e.Item1 == key ? (key, value) : e).ToArray());

    [Test]
    public void Encoded_event_decodes_to_the_same_event()
    {
        var original = SampleEvent();

        var decoded = OnexEventCodec.Default.Decode(OnexEventCodec.Default.Encode(original));

        Assert.Multiple(() =>
        {
            Assert.That(decoded.EventId, Is.EqualTo(original.EventId));
            Assert.That(decoded.Topic, Is.EqualTo(original.Topic));
            Assert.That(decoded.EventType, Is.EqualTo(original.EventType));
            Assert.That(decoded.SourceNodeId, Is.EqualTo(original.SourceNodeId));
            Assert.That(decoded.CorrelationId, Is.EqualTo(original.CorrelationId));
            Assert.That(decoded.Timestamp, Is.EqualTo(original.Timestamp));
            Assert.That(decoded.SchemaVersion, Is.EqualTo(OnexEvent.CurrentSchemaVersion));
            Assert.That(decoded.Headers, Is.EquivalentTo(original.Headers));
            Assert.That(decoded.Payload.ToArray(), Is.EqualTo(original.Payload.ToArray()), "payload bytes");
        });
    }

    [Test]
    public void Encoding_into_a_buffer_writer_gives_the_same_bytes()
    {
        var evt = SampleEvent();
        var buffer = new ArrayBufferWriter<byte>();

        OnexEventCodec.Default.Encode(evt, buffer);

        Assert.That(buffer.WrittenSpan.ToArray(), Is.EqualTo(OnexEventCodec.Default.Encode(evt)));
    }

    [Test]
    public void Event_with_empty_payload_and_defaults_round_trips()
    {
        var decoded = OnexEventCodec.Default.Decode(OnexEventCodec.Default.Encode(new OnexEvent { EventId = "e", Topic = "t" }));

        Assert.That((decoded.Payload.Length, decoded.EventType, decoded.Headers.Count, decoded.CorrelationId), Is.EqualTo((0, "", 0, (string?)null)));
    }

    [Test]
    public void Random_bytes_are_malformed()
    {
        var random = new Random(4711);
        for (var i = 0; i < 200; i++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            Assert.That(() => OnexEventCodec.Default.Decode(bytes), Throws.TypeOf<MalformedMessageException>(),
                $"random input #{i}: {Convert.ToHexString(bytes)}");
        }
    }

    [Test]
    public void Every_truncation_of_a_valid_event_is_malformed()
    {
        var frame = OnexEventCodec.Default.Encode(SampleEvent());
        for (var length = 0; length < frame.Length; length++)
        {
            var prefix = frame.AsMemory(0, length);
            Assert.That(() => OnexEventCodec.Default.Decode(prefix), Throws.TypeOf<MalformedMessageException>(),
                $"prefix of {length} of {frame.Length} bytes was not rejected");
        }
    }

    [Test]
    public void Nil_instead_of_an_event_is_malformed() =>
        Assert.That(() => OnexEventCodec.Default.Decode(new byte[] { 0xc0 }), Throws.TypeOf<MalformedMessageException>());

    [Test]
    public void Array_instead_of_an_event_is_malformed() =>
        Assert.That(() => OnexEventCodec.Default.Decode(MessagePackSerializer.Serialize(new[] { "e-1", "a.b" })),
            Throws.TypeOf<MalformedMessageException>());

    [TestCase("topic", 42)]
    [TestCase("eventId", true)]
    [TestCase("timestamp", "yesterday")]
    [TestCase("schemaVersion", "1")]
    [TestCase("headers", "k=v")]
    [TestCase("payload", 7)]
    public void Field_of_the_wrong_type_is_malformed(string key, object value) =>
        Assert.That(() => OnexEventCodec.Default.Decode(MapWith(key, value)), Throws.TypeOf<MalformedMessageException>(),
            $"'{key}' as {value.GetType().Name} should be rejected");

    [Test]
    public void Headers_as_a_list_are_malformed() =>
        Assert.That(() => OnexEventCodec.Default.Decode(MapWith("headers", new[] { "a", "b" })), Throws.TypeOf<MalformedMessageException>());

    [TestCase("eventType")]
    [TestCase("sourceNodeId")]
    [TestCase("headers")]
    public void Explicit_nil_for_a_non_nullable_field_is_malformed(string key) =>
        Assert.That(() => OnexEventCodec.Default.Decode(MapWith(key, null)), Throws.TypeOf<MalformedMessageException>());

    [Test]
    public void Nil_header_value_is_malformed() =>
        Assert.That(() => OnexEventCodec.Default.Decode(MapWith("headers", new Dictionary<string, string?> { ["trace"] = null })),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field"));

    [TestCase("eventId")]
    [TestCase("topic")]
    public void Missing_identity_field_is_malformed_and_named(string key) =>
        Assert.That(() => OnexEventCodec.Default.Decode(Map(ValidEntries().Where(e => e.Item1 != key).ToArray())),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("field").WithValue(key));

    [TestCase("a.*")]
    [TestCase("a..b")]
    [TestCase("a b")]
    public void Topic_that_is_not_concrete_is_malformed(string topic) =>
        Assert.That(() => OnexEventCodec.Default.Decode(MapWith("topic", topic)), Throws.TypeOf<MalformedMessageException>());

    [Test]
    public void Unknown_schema_version_is_unsupported_and_named()
    {
        var ex = Assert.Throws<UnsupportedVersionException>(() => OnexEventCodec.Default.Decode(MapWith("schemaVersion", 2)));

        Assert.That(ex!.Details, Does.ContainKey("schemaVersion").WithValue("2"));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.UnsupportedVersion));
    }

    [Test]
    public void Unknown_keys_are_ignored()
    {
        var decoded = OnexEventCodec.Default.Decode(Map([.. ValidEntries(), ("priority", 5), ("routing", new[] { "x" })]));

        Assert.That(decoded.EventId, Is.EqualTo("e-1"));
    }

    [Test]
    public void Trailing_bytes_after_the_event_are_malformed()
    {
        var frame = OnexEventCodec.Default.Encode(SampleEvent()).Append((byte)0xc0).ToArray();

        Assert.That(() => OnexEventCodec.Default.Decode(frame),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("trailingBytes").WithValue("1"));
    }

    [Test]
    public void Trailing_bytes_are_reported_before_what_is_wrong_inside_the_event()
    {
        var frame = OnexEventCodec.Default.Encode(SampleEvent() with { SchemaVersion = 2 }).Append((byte)0xc0).ToArray();

        Assert.That(() => OnexEventCodec.Default.Decode(frame),
            Throws.TypeOf<MalformedMessageException>().With.Property(nameof(OnexException.Details)).ContainKey("trailingBytes"));
    }

    [Test]
    public void DecodeNext_reads_a_batch_of_concatenated_events_in_order()
    {
        var first = SampleEvent();
        var second = SampleEvent() with { EventId = "second", Payload = new byte[] { 9 } };
        var batch = OnexEventCodec.Default.Encode(first).Concat(OnexEventCodec.Default.Encode(second)).ToArray();

        var one = OnexEventCodec.Default.DecodeNext(batch, out var consumed);
        var two = OnexEventCodec.Default.DecodeNext(batch.AsMemory(consumed), out var consumedSecond);

        Assert.Multiple(() =>
        {
            Assert.That(consumed, Is.EqualTo(OnexEventCodec.Default.Encode(first).Length), "the first event's length");
            Assert.That(consumed + consumedSecond, Is.EqualTo(batch.Length), "the second event ends the batch");
            Assert.That(one.EventId, Is.EqualTo(first.EventId));
            Assert.That(two.EventId, Is.EqualTo("second"));
            Assert.That(two.Payload.ToArray(), Is.EqualTo(new byte[] { 9 }));
        });
    }

    [Test]
    public void DecodeNext_holds_each_event_to_the_frame_limit_but_not_the_batch()
    {
        var small = SampleEvent() with { Headers = new Dictionary<string, string>(), Payload = new byte[8] };
        var encoded = SmallCodec.Encode(small);
        var batch = Enumerable.Repeat(encoded, 1 + SmallCodec.Limits.MaxFrameBytes / encoded.Length).SelectMany(e => e).ToArray();
        Assert.That(batch.Length, Is.GreaterThan(SmallCodec.Limits.MaxFrameBytes), "the batch must exceed the frame limit");

        Assert.That(SmallCodec.DecodeNext(batch, out var consumed).EventId, Is.EqualTo(small.EventId));
        Assert.That(consumed, Is.EqualTo(encoded.Length));

        var big = OnexEventCodec.Default.Encode(small with { Headers = new Dictionary<string, string> { ["h"] = new string('x', 600) } });
        Assert.That(() => SmallCodec.DecodeNext(big, out _),
            Throws.TypeOf<MessageTooLargeException>().With.Property(nameof(OnexException.Code)).EqualTo(ErrorCodes.TooLarge));
    }

    [Test]
    public void DecodeNext_refuses_garbage_after_a_valid_event_on_the_next_call()
    {
        var batch = OnexEventCodec.Default.Encode(SampleEvent()).Append((byte)0xc1).ToArray();

        OnexEventCodec.Default.DecodeNext(batch, out var consumed);

        Assert.That(() => OnexEventCodec.Default.DecodeNext(batch.AsMemory(consumed), out _), Throws.TypeOf<MalformedMessageException>());
    }

    [Test]
    public void Oversized_payload_is_refused_on_encode_with_the_limit()
    {
        var evt = SampleEvent() with { Payload = new byte[65] };

        var ex = Assert.Throws<MessageTooLargeException>(() => SmallCodec.Encode(evt));

        Assert.That(ex!.Details, Does.ContainKey("limit").WithValue("64"));
        Assert.That(ex.Details, Does.ContainKey("size").WithValue("65"));
    }

    [Test]
    public void Oversized_payload_is_refused_on_encode_into_a_buffer_writer_without_writing()
    {
        var buffer = new ArrayBufferWriter<byte>();

        Assert.Throws<MessageTooLargeException>(() => SmallCodec.Encode(SampleEvent() with { Payload = new byte[65] }, buffer));
        Assert.That(buffer.WrittenCount, Is.Zero, "A refused event must leave the caller's buffer untouched.");
    }

    [Test]
    public void Oversized_frame_from_large_headers_is_refused_on_encode()
    {
        var headers = Enumerable.Range(0, 40).ToDictionary(i => $"h{i}", _ => new string('x', 20));
        var buffer = new ArrayBufferWriter<byte>();

        var ex = Assert.Throws<MessageTooLargeException>(() => SmallCodec.Encode(SampleEvent() with { Headers = headers }, buffer));

        Assert.That(ex!.Details, Does.ContainKey("limit").WithValue("512"));
        Assert.That(buffer.WrittenCount, Is.Zero, "A refused event must leave the caller's buffer untouched.");
    }

    [Test]
    public void Oversized_payload_is_refused_on_decode_with_the_limit()
    {
        var frame = OnexEventCodec.Default.Encode(SampleEvent() with { Payload = new byte[100] });

        var ex = Assert.Throws<MessageTooLargeException>(() => SmallCodec.Decode(frame));

        Assert.That(ex!.Details, Does.ContainKey("limit").WithValue("64"));
    }

    [Test]
    public void Oversized_frame_is_refused_on_decode_before_parsing()
    {
        var frame = new byte[513]; // not even valid MessagePack: the size check comes first

        var ex = Assert.Throws<MessageTooLargeException>(() => SmallCodec.Decode(frame));

        Assert.That(ex!.Details, Does.ContainKey("limit").WithValue("512"));
    }

    [Test]
    public void Payload_sent_as_str_is_read_as_its_raw_bytes()
    {
        // Old MessagePack writers (msgpack "raw") send bytes as str; the decoder keeps the bytes unchanged.
        var decoded = OnexEventCodec.Default.Decode(MapWith("payload", "AQID"));

        Assert.That(decoded.Payload.ToArray(), Is.EqualTo("AQID"u8.ToArray()));
    }
}
