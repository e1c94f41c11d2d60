using System.Buffers;
using System.Reflection;
using CsCheck;
using MessagePack;
using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Registry;

namespace Onex.Tests.Contracts;

/// <summary>
/// Property (issue 10): for generated requests, well-formed and malformed, sent over a real DEALER to a registry node
/// running in this process, every message the registry sends back (replies and watch stream messages) validates against
/// <c>RegistryEnvelope.schema.json</c> and the schema of its type in <c>contracts/</c>, every error code is in the
/// catalogue and never INTERNAL, and a refused request leaves the registry's state (its snapshot) as it was.
/// </summary>
public class LiveReplySchemaPropertyTests
{
    /// <summary>How a generated request is spoiled (or not).</summary>
    public enum Spoil
    {
        /// <summary>Sent as generated: the body has the right shape, its values may still be refused.</summary>
        None,
        /// <summary>One field of the body holds a value of another MessagePack type (or is nil).</summary>
        WrongTypedField,
        /// <summary>One field's string is invalid UTF-8.</summary>
        InvalidUtf8,
        /// <summary>The body is not a map (an array, a string, nil).</summary>
        BodyNotAMap,
        /// <summary>An envelope key is missing or of the wrong type.</summary>
        BadEnvelopeKey,
        /// <summary>A byte after the envelope.</summary>
        TrailingBytes,
        /// <summary>The frame cut short.</summary>
        Truncated,
        /// <summary>A message type the registry does not answer.</summary>
        UnknownType,
    }

    /// <summary>One generated request: its type and body, how it is spoiled, and which field or value the spoiling picks.</summary>
    public sealed record Case(Type Type, object Body, Spoil Spoil, int Pick)
    {
        public override string ToString() => $"{Type.Name} {Spoil} #{Pick}: {JsonMessagePack.ToJson(Bodies.Serialize(Type, Body))}";
    }

    private static readonly HashSet<string> Catalogue = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();

    private static readonly object?[] WrongValues =
        [null, "text", 7, -1, true, 1.5, new object[] { 1, "a" }, new Dictionary<string, object> { ["k"] = 1 }, new byte[] { 1, 2 }, ulong.MaxValue, long.MinValue];

    private static readonly Gen<Case> Cases =
        Gen.Select(ReplySchemaPropertyTests.Request,
            Gen.Frequency((6, Gen.Const(Spoil.None)), (4, Gen.Const(Spoil.WrongTypedField)), (1, Gen.Const(Spoil.InvalidUtf8)),
                (1, Gen.Const(Spoil.BodyNotAMap)), (1, Gen.Const(Spoil.BadEnvelopeKey)), (1, Gen.Const(Spoil.TrailingBytes)),
                (1, Gen.Const(Spoil.Truncated)), (1, Gen.Const(Spoil.UnknownType))),
            Gen.Int[0, 1000],
            (request, spoil, pick) => new Case(request.Type, request.Body, spoil, pick));

    [Test]
    public async Task Every_reply_of_a_live_registry_to_generated_requests_validates_and_refusals_change_nothing()
    {
        // A clock that never moves: no lease expires and no node turns unhealthy, so only requests change the state.
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000));
        await using var registry = await TestRegistry.StartAsync(timeProvider: time);
        using var dealer = new TestDealer(registry.Host.RouterEndpoint, "prop");
        var live = new LiveExchange(dealer);
        live.Call(RegistryCodec.Encode(live.NextId(), "prop", new NodeAnnouncement { NodeId = "n1", Name = "n1" }));
        live.Call(RegistryCodec.Encode(live.NextId(), "prop", ToolContracts.Registration("tool-a")));
        var state = live.State();
        var refused = 0;
        var replyTypes = new HashSet<string>();
        var codes = new HashSet<string>();

        // One seed for the whole sequence (Sample's seed pins only its first iteration), so every run sends the same requests.
        foreach (var c in Cases.Array[300].Single(_ => true, "0N0XMxAbUGX0"))
        {
            var reply = live.Call(Frame(c, live.NextId()));
            replyTypes.Add(reply.MessageType);
            var after = live.State();
            if (reply.MessageType == nameof(Error))
            {
                refused++;
                var error = RegistryCodec.DeserializeBody<Error>(reply.Body);
                codes.Add(error.Code);
                if (!Catalogue.Contains(error.Code) || error.Code == ErrorCodes.Internal)
                    throw new AssertionException($"{c} got {error.Code} ({error.Message}), which no request may get");
                if (!after.AsSpan().SequenceEqual(state))
                    throw new AssertionException($"{c} was refused with {error.Code} ({error.Message}) but changed the registry's state");
            }
            state = after;
        }

        TestContext.Out.WriteLine($"replies: {string.Join(", ", replyTypes)}; codes: {string.Join(", ", codes)}; messages checked: {live.Checked}");
        Assert.Multiple(() =>
        {
            Assert.That(codes, Does.Contain(ErrorCodes.Malformed), "malformed requests were generated and refused");
            Assert.That(replyTypes.Count, Is.GreaterThanOrEqualTo(4), $"too few kinds of reply were checked: {string.Join(", ", replyTypes)}");
            Assert.That(refused, Is.GreaterThan(0).And.LessThan(300), "both refusals and successes were checked");
        });
    }

    private static byte[] Frame(Case c, string requestId)
    {
        var messageType = c.Spoil == Spoil.UnknownType ? "Frobnicate" + c.Type.Name : MessageTypes.NameOf(c.Type);
        var body = Bodies.Serialize(c.Type, c.Body);
        switch (c.Spoil)
        {
            case Spoil.WrongTypedField:
                body = Respoil(body, c.Pick, (ref MessagePackWriter w, object? _) => MessagePackSerializer.Serialize(ref w, WrongValues[c.Pick % WrongValues.Length]));
                break;
            case Spoil.InvalidUtf8:
                body = Respoil(body, c.Pick, (ref MessagePackWriter w, object? value) =>
                {
                    if (value is string) w.WriteString([0x61, 0xC3, 0x28]); // 'a' then a broken two-byte sequence
                    else MessagePackSerializer.Serialize(ref w, value);
                });
                break;
            case Spoil.BodyNotAMap:
                body = MessagePackSerializer.Serialize(new object?[] { new object[] { 1 }, "body", null }[c.Pick % 3]);
                break;
        }
        var frame = Envelope(messageType, requestId, body, c.Spoil == Spoil.BadEnvelopeKey ? c.Pick % 6 : -1);
        return c.Spoil switch
        {
            Spoil.TrailingBytes => [.. frame, 0xC0],
            Spoil.Truncated => frame[..Math.Max(1, frame.Length * (c.Pick % 100) / 100)],
            _ => frame,
        };
    }

    private delegate void ValueWriter(ref MessagePackWriter writer, object? value);

    // Rewrites the body map with the value of field number pick (modulo its count) written by spoil.
    private static byte[] Respoil(byte[] body, int pick, ValueWriter spoil)
    {
        var map = MessagePackSerializer.Deserialize<Dictionary<string, object?>>(body);
        var target = map.Count == 0 ? -1 : pick % map.Count;
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(map.Count);
        var i = 0;
        foreach (var (key, value) in map)
        {
            w.Write(key);
            if (i++ == target) spoil(ref w, value);
            else MessagePackSerializer.Serialize(ref w, value);
        }
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    // The envelope of PROTOCOL.md 3; badKey 0-5 spoils one key: 0 version as a string, 1 no messageType, 2 requestId a
    // number, 3 clientId nil, 4 no body, 5 a non-string key first.
    private static byte[] Envelope(string messageType, string requestId, byte[] body, int badKey)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(badKey is 1 or 4 ? 4 : badKey == 5 ? 6 : 5);
        if (badKey == 5)
        {
            w.Write(1);
            w.Write(1);
        }
        w.Write("protocolVersion");
        if (badKey == 0) w.Write("1");
        else w.Write(ProtocolVersion.Current);
        if (badKey != 1)
        {
            w.Write("messageType");
            w.Write(messageType);
        }
        w.Write("requestId");
        if (badKey == 2) w.Write(42);
        else w.Write(requestId);
        w.Write("clientId");
        if (badKey == 3) w.WriteNil();
        else w.Write("prop");
        if (badKey != 4)
        {
            w.Write("body");
            w.WriteRaw(body);
        }
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// One request at a time over the DEALER: every message received is checked against the contracts; watch stream
    /// messages (a <c>WatchEvent</c> under another request's id) are checked and passed over.
    /// </summary>
    private sealed class LiveExchange(TestDealer dealer)
    {
        private long _ids;

        public long Checked { get; private set; }

        public string NextId() => "p" + ++_ids;

        public RegistryEnvelope Call(byte[] frame)
        {
            var requestId = RegistryCodec.TryReadIds(frame).RequestId;
            dealer.SendFrames(frame);
            while (true)
            {
                var bytes = dealer.ReceiveFrame();
                var reply = Check(bytes);
                if (reply.MessageType == nameof(WatchEvent) && reply.RequestId != requestId) continue;
                return reply;
            }
        }

        /// <summary>The registry's state as a snapshot's bytes (all but the time it was taken).</summary>
        public byte[] State()
        {
            var reply = Call(RegistryCodec.Encode(NextId(), "prop", new SnapshotRequest()));
            var snapshot = RegistryCodec.DeserializeBody<RegistrySnapshot>(reply.Body);
            return RegistryCodec.SerializeBody(snapshot with { TakenAt = 0 });
        }

        private RegistryEnvelope Check(byte[] bytes)
        {
            Checked++;
            var envelopeErrors = ContractFiles.ValidateAsync(nameof(RegistryEnvelope), JsonMessagePack.ToJson(bytes)).GetAwaiter().GetResult();
            if (envelopeErrors.Count > 0) throw new AssertionException($"a reply envelope breaks its schema: {string.Join("; ", envelopeErrors)}");
            var reply = TestDealer.DecodeReply(bytes); // an Error to an unreadable request carries empty ids
            var bodyErrors = ContractFiles.ValidateAsync(reply.MessageType, JsonMessagePack.ToJson(reply.Body)).GetAwaiter().GetResult();
            if (bodyErrors.Count > 0)
                throw new AssertionException($"a {reply.MessageType} reply breaks its schema: {string.Join("; ", bodyErrors)} in {JsonMessagePack.ToJson(reply.Body)}");
            return reply;
        }
    }
}
