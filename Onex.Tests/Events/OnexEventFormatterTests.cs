using System.Buffers;
using MessagePack;
using Onex.Events;

namespace Onex.Tests.Events;

/// <summary>
/// The hand-written <see cref="OnexEvent"/> formatter against MessagePack's own attribute-driven formatter, run on a
/// mirror type with the same keys and defaults: the same bytes out, and for thousands of generated and mutated maps
/// the same outcome in (both fail, or both give the same fields and consume the same bytes).
/// </summary>
public class OnexEventFormatterTests
{
    private const int GeneratedMaps = 4_000;
    private const int MutatedFrames = 4_000;

    private static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    private static readonly string[] Keys =
        ["eventId", "topic", "eventType", "sourceNodeId", "correlationId", "timestamp", "schemaVersion", "headers", "payload"];

    private static IEnumerable<OnexEvent> SampleEvents()
    {
        yield return OnexEvent.Create("orders.42.paid", new byte[] { 1, 2, 3 });
        yield return OnexEvent.Create("a", ReadOnlyMemory<byte>.Empty);
        yield return OnexEvent.Create("billing.invoice", new byte[70_000], "InvoicePaid", "billing-1", "req-7",
            new Dictionary<string, string> { ["traceparent"] = "00-abc-01", ["tenant"] = "ü-ñ" });
        yield return OnexEvent.Create("x.y", new byte[] { 0xc1 }) with { Timestamp = -1, SchemaVersion = int.MaxValue, EventId = new string('é', 40) };
    }

    [Test]
    public void Encoding_gives_the_bytes_of_the_attribute_driven_formatter()
    {
        foreach (var evt in SampleEvents())
        {
            var expected = MessagePackSerializer.Serialize(MirrorEvent.From(evt), Options);
            Assert.That(MessagePackSerializer.Serialize(evt, Options), Is.EqualTo(expected), $"event on '{evt.Topic}'");
        }
    }

    [Test]
    public void Generated_maps_decode_as_the_attribute_driven_formatter_decodes_them()
    {
        var random = new Random(20261124);
        var successes = 0;
        for (var i = 0; i < GeneratedMaps; i++)
        {
            var frame = GeneratedMap(random);
            if (AssertSameOutcome(frame, $"generated map {i}: {MessagePackSerializer.ConvertToJson(frame)}")) successes++;
        }
        // Both outcomes must be exercised, or the comparison proves little.
        Assert.That(successes, Is.InRange(GeneratedMaps / 10, GeneratedMaps - GeneratedMaps / 10), "share of maps both formatters accept");
    }

    [Test]
    public void Mutated_frames_decode_as_the_attribute_driven_formatter_decodes_them()
    {
        var random = new Random(7);
        var frames = SampleEvents().Select(e => MessagePackSerializer.Serialize(e with { Payload = e.Payload[..Math.Min(e.Payload.Length, 16)] }, Options)).ToArray();
        for (var i = 0; i < MutatedFrames; i++)
        {
            var frame = (byte[])frames[random.Next(frames.Length)].Clone();
            for (var flips = random.Next(1, 4); flips > 0; flips--) frame[random.Next(frame.Length)] = (byte)random.Next(256);
            AssertSameOutcome(frame, $"mutated frame {i}: {Convert.ToHexString(frame)}");
        }
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Depth_limits_apply_as_they_do_to_the_attribute_driven_formatter(int depth)
    {
        var limited = Options.WithSecurity(MessagePackSecurity.UntrustedData.WithMaximumObjectGraphDepth(depth));
        foreach (var evt in SampleEvents())
        {
            var frame = MessagePackSerializer.Serialize(evt, Options);
            var ours = Throws(() => MessagePackSerializer.Deserialize<OnexEvent>(frame, limited));
            var theirs = Throws(() => MessagePackSerializer.Deserialize<MirrorEvent>(frame, limited));
            Assert.That(ours, Is.EqualTo(theirs), $"depth {depth}, event on '{evt.Topic}' ({evt.Headers.Count} headers): ours threw {ours}, theirs {theirs}");
        }
    }

    private static bool Throws(Action decode)
    {
        try
        {
            decode();
            return false;
        }
        catch (MessagePackSerializationException)
        {
            return true;
        }
    }

    [Test]
    public void Empty_headers_decode_to_the_shared_empty_instance_and_others_to_their_entries()
    {
        var plain = MessagePackSerializer.Deserialize<OnexEvent>(MessagePackSerializer.Serialize(OnexEvent.Create("a", default), Options), Options);
        var withHeaders = MessagePackSerializer.Deserialize<OnexEvent>(MessagePackSerializer.Serialize(
            OnexEvent.Create("a", default, headers: new Dictionary<string, string> { ["k"] = "v" }), Options), Options);

        Assert.Multiple(() =>
        {
            Assert.That(plain.Headers, Is.SameAs(OnexEvent.Create("b", default).Headers), "no allocation for the common empty map");
            Assert.That(withHeaders.Headers, Is.EquivalentTo(new Dictionary<string, string> { ["k"] = "v" }));
        });
    }

    /// <summary>Decodes with both formatters; true when both succeeded (with equal results), false when both failed.</summary>
    private static bool AssertSameOutcome(byte[] frame, string context)
    {
        var (ours, oursConsumed, oursError) = Decode<OnexEvent>(frame);
        var (theirs, theirsConsumed, theirsError) = Decode<MirrorEvent>(frame);
        Assert.That(oursError is null, Is.EqualTo(theirsError is null),
            $"{context}: ours {(oursError is null ? "succeeded" : "failed: " + oursError.Message)}, theirs {(theirsError is null ? "succeeded" : "failed: " + theirsError.Message)}");
        if (ours is null || theirs is null)
        {
            Assert.That(ours is null, Is.EqualTo(theirs is null), $"{context}: nil handling");
            return oursError is null && ours is not null;
        }
        Assert.That(oursConsumed, Is.EqualTo(theirsConsumed), $"{context}: bytes consumed");
        Assert.That(Fields(ours), Is.EqualTo(Fields(Mirror(theirs))), context);
        return true;
    }

    private static (T? Value, long Consumed, Exception? Error) Decode<T>(byte[] frame)
    {
        try
        {
            var reader = new MessagePackReader(frame);
            var value = MessagePackSerializer.Deserialize<T>(ref reader, Options);
            return (value, reader.Consumed, null);
        }
        catch (MessagePackSerializationException ex)
        {
            return (default, 0, ex);
        }
    }

    private static string Fields(OnexEvent e) =>
        $"{e.EventId ?? "<null>"}|{e.Topic ?? "<null>"}|{e.EventType ?? "<null>"}|{e.SourceNodeId ?? "<null>"}|{e.CorrelationId ?? "<null>"}|" +
        $"{e.Timestamp}|{e.SchemaVersion}|{(e.Headers is null ? "<null>" : string.Join(",", e.Headers.OrderBy(h => h.Key, StringComparer.Ordinal).Select(h => $"{h.Key}={h.Value}")))}|" +
        Convert.ToHexString(e.Payload.Span);

    private static OnexEvent Mirror(MirrorEvent m) => new()
    {
        EventId = m.EventId!, Topic = m.Topic!, EventType = m.EventType!, SourceNodeId = m.SourceNodeId!, CorrelationId = m.CorrelationId,
        Timestamp = m.Timestamp, SchemaVersion = m.SchemaVersion, Headers = m.Headers!, Payload = m.Payload,
    };

    /// <summary>
    /// A map of known keys (some missing, some repeated), unknown keys and non-string keys, each with a value that is
    /// usually of the right type and otherwise nil or another type.
    /// </summary>
    private static byte[] GeneratedMap(Random random)
    {
        var keys = new List<string>();
        foreach (var key in Keys)
            for (var copies = random.Next(100) < 85 ? 1 : random.Next(3); copies > 0; copies--) keys.Add(key);
        if (random.Next(10) == 0) keys.Add("unknown");
        var shuffled = keys.OrderBy(_ => random.Next()).ToList();
        var nonStringKey = random.Next(40) == 0;
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(shuffled.Count + (nonStringKey ? 1 : 0));
        foreach (var key in shuffled) WriteEntry(ref writer, key, random);
        if (nonStringKey)
        {
            switch (random.Next(3))
            {
                case 0: writer.WriteNil(); break;
                case 1: writer.Write(""); break;
                default: writer.Write(5); break;
            }
            writer.Write(1);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteEntry(ref MessagePackWriter writer, string key, Random random)
    {
        writer.Write(key);
        var kind = random.Next(100);
        if (kind < 80) WriteValid(ref writer, key, random);
        else WriteOther(ref writer, random);
    }

    private static void WriteValid(ref MessagePackWriter writer, string key, Random random)
    {
        switch (key)
        {
            case "timestamp": writer.Write(random.NextInt64(-5, 1_800_000_000_000)); break;
            case "schemaVersion": writer.Write(random.Next(3) == 0 ? random.Next() : 1); break;
            case "headers":
                var count = random.Next(3);
                writer.WriteMapHeader(count);
                for (var i = 0; i < count; i++)
                {
                    writer.Write($"h{random.Next(2)}");
                    if (random.Next(8) == 0) writer.WriteNil(); else writer.Write($"v{i}");
                }
                break;
            case "payload":
                var bytes = new byte[random.Next(6)];
                random.NextBytes(bytes);
                if (random.Next(6) == 0) writer.Write("as-str"); else writer.Write(bytes);
                break;
            default: writer.Write($"{key}-{random.Next(10)}"); break;
        }
    }

    private static void WriteOther(ref MessagePackWriter writer, Random random)
    {
        switch (random.Next(8))
        {
            case 0: writer.WriteNil(); break;
            case 1: writer.Write(random.Next(-100, 100_000)); break;
            case 2: writer.Write("text"); break;
            case 3: writer.Write(new byte[] { 1, 2 }); break;
            case 4: writer.WriteArrayHeader(1); writer.Write(1); break;
            case 5: writer.WriteMapHeader(1); writer.Write("k"); writer.Write("v"); break;
            case 6: writer.Write(1.5); break;
            default: writer.Write(true); break;
        }
    }
}
