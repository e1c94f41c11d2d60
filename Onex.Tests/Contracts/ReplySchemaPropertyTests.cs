using System.Reflection;
using CsCheck;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Server;
using Onex.Tests.Registry;

namespace Onex.Tests.Contracts;

/// <summary>
/// Property: for generated requests of every type (any field values, valid or not, against a registry whose state
/// the earlier requests built up), every reply is a valid <c>RegistryEnvelope</c> whose body validates against the
/// schema in <c>contracts/</c> of its message type, and every error code is in the catalogue, never INTERNAL.
/// </summary>
public class ReplySchemaPropertyTests
{
    private static readonly Type[] RequestTypes = RequestDispatcher.RequestTypes.Order(StringComparer.Ordinal).Select(n => MessageTypes.TypeOf(n)!).ToArray();

    private static readonly HashSet<string> Catalogue = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();

    // Values that mean something to the registry (ids it knows, names, kinds, schema texts) beside hostile ones.
    // Mostly values the registry accepts, so that requests also succeed; hostile values and random text besides.
    private static readonly Gen<string> Text = Gen.Frequency(
        (6, Gen.OneOf<string>("n1", "n2", "tool-a", "bus-a", "1.0.0", "input", "output", "zmq", "tcp", "udp", "tcp://127.0.0.1:21000",
            """{"type":"object","properties":{"n":{"type":"integer"}}}""", "{}", "5", "RATE_LIMITED")),
        (2, Gen.OneOf<string>("2.0.0-rc.1", "nats", """{"type":"string","pattern":"^(a+)+$"}""", "not json", "", " ", "a b", "a\nb", "é",
            new string('x', 300), new string('a', 40) + "!")),
        (1, Gen.String[Gen.Char['a', 'z'], 0, 12]));

    private static Gen<object?> ValueOf(Type type, int depth)
    {
        var nullable = Nullable.GetUnderlyingType(type);
        if (nullable is not null) return Gen.Frequency((1, (IGen<object?>)Gen.Const(() => (object?)null)), (3, ValueOf(nullable, depth)));
        if (type == typeof(string)) return Text.Select(s => (object?)s);
        if (type == typeof(bool)) return Gen.Bool.Select(b => (object?)b);
        if (type == typeof(int))
            return Gen.Frequency((4, Gen.Int[1, 3]), (1, Gen.Int[-2, 70]), (1, Gen.Int[20000, 20010]), (1, Gen.OneOf(int.MinValue, int.MaxValue))).Select(i => (object?)i);
        if (type == typeof(long))
            return Gen.Frequency((4, Gen.Long[1_000, 60_000]), (1, Gen.Long[-2, 100_000]), (1, Gen.OneOf(long.MinValue, long.MaxValue, 1_700_000_000_000L))).Select(l => (object?)l);
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
        {
            var item = type.GetGenericArguments()[0];
            return ValueOf(item, depth + 1).Array[0, depth > 1 ? 0 : 3].Select(items =>
            {
                var array = Array.CreateInstance(item, items.Length);
                for (var i = 0; i < items.Length; i++) array.SetValue(items[i], i);
                return (object?)array;
            });
        }
        if (type == typeof(IReadOnlyDictionary<string, string>))
            return Gen.Select(Text, Text).Array[0, 3].Select(pairs => (object?)pairs.DistinctBy(p => p.Item1).ToDictionary(p => p.Item1, p => p.Item2));
        if (type.IsClass && depth < 3) return BodyOf(type, depth + 1);
        return Gen.Const(() => (object?)null);
    }

    private static Gen<object?> BodyOf(Type type, int depth)
    {
        var properties = type.GetProperties().Where(p => p.GetCustomAttribute<KeyAttribute>() is not null && p.CanWrite).ToArray();
        return ArrayOf(properties.Select(p => ValueOf(p.PropertyType, depth)).ToArray()).Select(
            values =>
            {
                var body = Activator.CreateInstance(type)!;
                for (var i = 0; i < properties.Length; i++) properties[i].SetValue(body, values[i]);
                return (object?)body;
            });
    }

    private static Gen<object?[]> ArrayOf(Gen<object?>[] gens) =>
        gens.Aggregate(Gen.Const(Array.Empty<object?>()), (all, next) => all.Select(next, (values, value) => values.Append(value).ToArray()));

    internal static readonly Gen<(Type Type, object Body)> Request =
        Gen.Int[0, RequestTypes.Length - 1].SelectMany(i => BodyOf(RequestTypes[i], 0).Select(body => (RequestTypes[i], body!)));

    [Test]
    public void Every_reply_to_a_generated_request_validates_against_its_schema_in_contracts()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a");
        var next = 0;
        var answered = new HashSet<string>();

        // One seed for the whole sequence: the same requests on every run (Sample's seed pins only its first iteration).
        foreach (var request in Request.Array[400].Single(_ => true, "av4FuVeLz-91"))
        {
            var frame = Bodies.Encode(request.Type, $"r{++next}", "prop", request.Body);
            var replyBytes = h.Dispatcher.Dispatch(frame);
            var envelopeErrors = ContractFiles.ValidateAsync(nameof(RegistryEnvelope), JsonMessagePack.ToJson(replyBytes)).GetAwaiter().GetResult();
            if (envelopeErrors.Count > 0) throw new AssertionException($"reply envelope breaks its schema: {string.Join("; ", envelopeErrors)}");
            var reply = RegistryCodec.Decode(replyBytes, RegistryCodec.MaxReplyFrameBytes);
            var bodyErrors = ContractFiles.ValidateAsync(reply.MessageType, JsonMessagePack.ToJson(reply.Body)).GetAwaiter().GetResult();
            if (bodyErrors.Count > 0)
                throw new AssertionException($"{reply.MessageType} reply to {request.Type.Name} breaks its schema: {string.Join("; ", bodyErrors)}");
            answered.Add(reply.MessageType);
            if (reply.MessageType == nameof(Error))
            {
                var code = RegistryCodec.DeserializeBody<Error>(reply.Body).Code;
                if (!Catalogue.Contains(code) || code == ErrorCodes.Internal)
                    throw new AssertionException($"{request.Type.Name} got {code}, which a valid or invalid request must never get");
            }
        }

        // Not only errors: with this seed the generated requests also succeed (snapshots, node records, acks), so
        // success replies were checked too. Most generated bodies carry at least one invalid field.
        Assert.That(answered.Count, Is.GreaterThanOrEqualTo(4), $"too few kinds of reply were checked: {string.Join(", ", answered)}");
    }
}
