using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using MessagePack;
using Onex.Events;
using Onex.Protocol;

namespace Onex.Tests.Contracts;

/// <summary>
/// Proves each C# contract type and its JSON Schema in <c>contracts/</c> agree, in both directions: what C# writes
/// satisfies the schema, and what the schema's examples show decodes into the C# type and back.
/// </summary>
public class SchemaAgreementTests
{
    private const string EventName = nameof(OnexEvent);
    private const string EnvelopeName = nameof(RegistryEnvelope);

    private static readonly string SchemaFolder = Path.Combine(AppContext.BaseDirectory, "contracts");

    public static IEnumerable<TestCaseData> MessageTypeCases() =>
        MessageTypes.All.Keys.Order(StringComparer.Ordinal).Select(n => new TestCaseData(n).SetArgDisplayNames(n));

    public static IEnumerable<TestCaseData> BodyTypeCases() =>
        MessageTypes.All.Values.Concat(SampleMessages.NestedTypes).OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => new TestCaseData(t).SetArgDisplayNames(t.Name));

    public static IEnumerable<TestCaseData> SchemaFileCases() =>
        Directory.EnumerateFiles(SchemaFolder, "*.schema.json").Select(p => Path.GetFileName(p)[..^".schema.json".Length])
            .Order(StringComparer.Ordinal).Select(n => new TestCaseData(n).SetArgDisplayNames(n));

    public static IEnumerable<TestCaseData> ExampleCases()
    {
        foreach (var name in SchemaFileCases().Select(c => (string)c.Arguments[0]!))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(SchemaFolder, name + ".schema.json")));
            var count = document.RootElement.TryGetProperty("examples", out var examples) ? examples.GetArrayLength() : 0;
            for (var i = 0; i < count; i++)
                yield return new TestCaseData(name, i).SetArgDisplayNames(name, $"example {i}");
        }
    }

    [TestCaseSource(nameof(MessageTypeCases))]
    public void Every_message_type_has_a_schema_file(string messageType) =>
        Assert.That(File.Exists(ContractFiles.SchemaPath(messageType)), Is.True,
            $"contracts/{messageType}.schema.json is missing: every type in MessageTypes.All needs its schema.");

    [TestCaseSource(nameof(MessageTypeCases))]
    public void Every_message_type_has_a_protocol_section(string messageType)
    {
        var headings = File.ReadAllLines(ContractFiles.ProtocolPath).Where(l => l.StartsWith('#'));
        Assert.That(headings.Any(h => h.Split(' ', '`', '(', ')', ',', '/', ':').Contains(messageType)), Is.True,
            $"contracts/PROTOCOL.md has no heading naming {messageType}.");
    }

    [TestCaseSource(nameof(SchemaFileCases))]
    public void Every_schema_file_belongs_to_a_contract_type(string name)
    {
        var known = MessageTypes.All.Keys.Concat(SampleMessages.NestedTypes.Select(t => t.Name)).Append(EventName).Append(EnvelopeName);
        Assert.That(known, Does.Contain(name), $"contracts/{name}.schema.json describes no C# contract type.");
    }

    [TestCaseSource(nameof(SchemaFileCases))]
    public void Schema_is_self_describing(string name)
    {
        var schema = ContractFiles.SchemaDocument(name);
        var problems = new List<string>();
        if (schema.GetProperty("$schema").GetString() != "http://json-schema.org/draft-07/schema#") problems.Add("$schema is not draft-07");
        if (schema.GetProperty("$id").GetString() is not { } id || !id.EndsWith("/" + name + ".schema.json", StringComparison.Ordinal))
            problems.Add("$id does not end with the file name");
        if (schema.GetProperty("title").GetString() != name) problems.Add("title is not the type name");
        if (string.IsNullOrWhiteSpace(schema.GetProperty("description").GetString())) problems.Add("no description");
        if (!schema.TryGetProperty("examples", out var examples) || examples.GetArrayLength() == 0) problems.Add("no examples");
        if (schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False)
            problems.Add("additionalProperties is false, but receivers must tolerate unknown keys");
        foreach (var property in schema.GetProperty("properties").EnumerateObject())
            if (!property.Value.TryGetProperty("description", out var text) || string.IsNullOrWhiteSpace(text.GetString()))
                problems.Add($"property '{property.Name}' has no description");
        Assert.That(problems, Is.Empty, $"{name}.schema.json: {string.Join("; ", problems)}");
    }

    [TestCaseSource(nameof(BodyTypeCases))]
    public void Schema_properties_are_the_contract_type_keys(Type type)
    {
        var schemaProperties = ContractFiles.SchemaDocument(type.Name).GetProperty("properties").EnumerateObject().Select(p => p.Name);
        Assert.That(schemaProperties, Is.EquivalentTo(KeysOf(type).Select(k => k.Key)),
            $"{type.Name}: the schema's properties and the C# [Key] names differ.");
    }

    [TestCaseSource(nameof(BodyTypeCases))]
    public void Schema_allows_null_exactly_where_the_contract_type_is_nullable(Type type)
    {
        var properties = ContractFiles.SchemaDocument(type.Name).GetProperty("properties");
        var context = new NullabilityInfoContext();
        var mismatches = new List<string>();
        foreach (var (key, property) in KeysOf(type))
        {
            var nullable = Nullable.GetUnderlyingType(property.PropertyType) is not null
                || (!property.PropertyType.IsValueType && context.Create(property).ReadState == NullabilityState.Nullable);
            if (nullable != AllowsNull(properties.GetProperty(key)))
                mismatches.Add($"{key} (C# nullable: {nullable})");
        }
        Assert.That(mismatches, Is.Empty, $"{type.Name}: null is allowed differently by the schema and C# for {string.Join(", ", mismatches)}.");
    }

    [TestCaseSource(nameof(BodyTypeCases))]
    public void Schema_requires_every_required_member_of_the_contract_type(Type type)
    {
        var required = ContractFiles.SchemaDocument(type.Name).GetProperty("required").EnumerateArray().Select(e => e.GetString());
        var csharpRequired = KeysOf(type).Where(k => k.Property.GetCustomAttribute<System.Runtime.CompilerServices.RequiredMemberAttribute>() is not null)
            .Select(k => k.Key);
        Assert.That(required, Is.SupersetOf(csharpRequired), $"{type.Name}: a C# 'required' member is optional in the schema.");
    }

    [TestCaseSource(nameof(BodyTypeCases))]
    public async Task Serialized_contract_type_satisfies_its_schema(Type type)
    {
        Assert.That(SampleMessages.ByType, Does.ContainKey(type), $"SampleMessages has no instance of {type.Name}.");
        var json = JsonMessagePack.ToJson(Bodies.Serialize(type, SampleMessages.ByType[type]));

        var errors = await ContractFiles.ValidateAsync(type.Name, json);

        Assert.That(errors, Is.Empty, $"{type.Name} as written by C# violates its schema:\n{string.Join("\n", errors)}\nJSON: {json}");
    }

    [TestCaseSource(nameof(MessageTypeCases))]
    public async Task Envelope_around_each_message_satisfies_the_envelope_schema(string messageType)
    {
        var type = MessageTypes.All[messageType];
        var json = JsonMessagePack.ToJson(Bodies.Encode(type, "r-000192", "billing-worker-1/7f3a", SampleMessages.ByType[type]));

        var errors = await ContractFiles.ValidateAsync(EnvelopeName, json);

        Assert.That(errors, Is.Empty, $"Envelope around {messageType} violates RegistryEnvelope.schema.json:\n{string.Join("\n", errors)}\nJSON: {json}");
    }

    [TestCase(nameof(RegistryChange))]
    [TestCase(nameof(RegistryHeartbeat))]
    public async Task Event_carrying_a_registry_broadcast_satisfies_the_event_schema(string messageType)
    {
        var type = MessageTypes.All[messageType];
        var topic = SampleMessages.ByType[type] is RegistryChange change ? ChangeTypes.TopicOf(change.ChangeType) : ChangeTypes.HeartbeatTopic;
        var evt = OnexEvent.Create(topic, Bodies.Serialize(type, SampleMessages.ByType[type]), "registry.change", "onex-registry");
        var json = JsonMessagePack.ToJson(OnexEventCodec.Default.Encode(evt));

        var errors = await ContractFiles.ValidateAsync(EventName, json);

        Assert.That(errors, Is.Empty, $"OnexEvent violates its schema:\n{string.Join("\n", errors)}\nJSON: {json}");
        Assert.That(JsonNode.Parse(json)!["payload"]!.GetValue<string>(), Is.EqualTo(Convert.ToBase64String(evt.Payload.Span)),
            "The JSON form of the payload must be the base64 of the bin bytes.");
    }

    [TestCaseSource(nameof(ExampleCases))]
    public async Task Schema_example_decodes_into_the_contract_type_and_back(string name, int index)
    {
        var example = ContractFiles.SchemaDocument(name).GetProperty("examples")[index];
        var reencodedJson = name switch
        {
            EventName => RoundTripEvent(example),
            EnvelopeName => RoundTripEnvelope(example),
            _ => RoundTripBody(ContractType(name), example),
        };

        var errors = await ContractFiles.ValidateAsync(name, reencodedJson);
        Assert.That(errors, Is.Empty, $"{name} example {index} re-encoded by C# violates its schema:\n{string.Join("\n", errors)}");
        AssertCarries(JsonNode.Parse(example.GetRawText())!, JsonNode.Parse(reencodedJson)!, name);
    }

    [Test]
    public void Change_type_enum_lists_every_change_type() =>
        AssertEnumMatches("RegistryChange", "changeType", typeof(ChangeTypes), exclude: [nameof(ChangeTypes.TopicPrefix), nameof(ChangeTypes.HeartbeatTopic)]);

    [Test]
    public void Bus_kind_enum_lists_every_bus_kind() => AssertEnumMatches("EventBusRegistration", "kind", typeof(BusKinds));

    [Test]
    public void Port_protocol_enum_lists_every_port_protocol() => AssertEnumMatches("PortRequest", "protocol", typeof(PortProtocols));

    [Test]
    public void Health_enum_lists_every_health() => AssertEnumMatches("NodeRecord", "health", typeof(Health));

    [Test]
    public void Direction_enum_lists_every_payload_direction() => AssertEnumMatches("ValidatePayload", "direction", typeof(PayloadDirections));

    [Test]
    public void Include_enum_lists_every_introspection_section()
    {
        var include = ContractFiles.SchemaDocument("IntrospectionRequest").GetProperty("properties").GetProperty("include");
        Assert.That(include.GetProperty("items").GetProperty("enum").EnumerateArray().Select(e => e.GetString()),
            Is.EquivalentTo(ConstantsOf(typeof(IntrospectionSections))), "IntrospectionRequest.include enum differs from IntrospectionSections.");
    }

    private static string RoundTripBody(Type type, JsonElement example)
    {
        var body = Bodies.Deserialize(type, JsonMessagePack.FromJson(example));
        AssertScalarFields(body, example);
        return JsonMessagePack.ToJson(Bodies.Serialize(type, body));
    }

    private static string RoundTripEnvelope(JsonElement example)
    {
        var envelope = RegistryCodec.Decode(JsonMessagePack.FromJson(example));
        Assert.That(envelope.RequestId, Is.EqualTo(example.GetProperty("requestId").GetString()), "requestId after decoding the envelope example");
        Assert.That(envelope.ProtocolVersion, Is.EqualTo(example.GetProperty("protocolVersion").GetInt32()), "protocolVersion after decoding");
        var type = MessageTypes.TypeOf(envelope.MessageType);
        Assert.That(type, Is.Not.Null, $"The envelope example names an unknown message type '{envelope.MessageType}'.");
        var body = Bodies.Decode(type!, envelope);
        AssertScalarFields(body, example.GetProperty("body"));
        return JsonMessagePack.ToJson(Bodies.Encode(type!, envelope.RequestId, envelope.ClientId, body));
    }

    private static string RoundTripEvent(JsonElement example)
    {
        var evt = OnexEventCodec.Default.Decode(JsonMessagePack.FromJson(example, "payload"));
        Assert.That(evt.EventId, Is.EqualTo(example.GetProperty("eventId").GetString()), "eventId after decoding the event example");
        Assert.That(evt.Topic, Is.EqualTo(example.GetProperty("topic").GetString()), "topic after decoding");
        Assert.That(evt.Timestamp, Is.EqualTo(example.GetProperty("timestamp").GetInt64()), "timestamp after decoding");
        Assert.That(evt.Payload.ToArray(), Is.EqualTo(Convert.FromBase64String(example.GetProperty("payload").GetString()!)), "payload bytes");

        // The registry's broadcasts carry a RegistryChange or RegistryHeartbeat map as payload.
        object broadcast = evt.EventType == "registry.heartbeat"
            ? RegistryCodec.DeserializeBody<RegistryHeartbeat>(evt.Payload)
            : RegistryCodec.DeserializeBody<RegistryChange>(evt.Payload);
        if (broadcast is RegistryChange change)
            Assert.That(evt.Topic, Is.EqualTo(ChangeTypes.TopicOf(change.ChangeType)), "A change's topic is registry. + its change type.");
        else
            Assert.That(evt.Topic, Is.EqualTo(ChangeTypes.HeartbeatTopic), "Heartbeats go on registry.heartbeat.");
        return JsonMessagePack.ToJson(OnexEventCodec.Default.Encode(evt));
    }

    /// <summary>Each top-level string, number or boolean of the example arrives in the C# property with that key.</summary>
    private static void AssertScalarFields(object body, JsonElement example)
    {
        var checkedAny = false;
        foreach (var (key, property) in KeysOf(body.GetType()))
        {
            if (!example.TryGetProperty(key, out var expected)) continue;
            var actual = property.GetValue(body);
            object? expectedValue = expected.ValueKind switch
            {
                JsonValueKind.String => expected.GetString(),
                JsonValueKind.Number => expected.GetInt64(),
                JsonValueKind.True or JsonValueKind.False => expected.GetBoolean(),
                _ => actual is null && expected.ValueKind == JsonValueKind.Null ? null : actual,
            };
            if (actual is int or long) actual = Convert.ToInt64(actual);
            Assert.That(actual, Is.EqualTo(expectedValue), $"{body.GetType().Name}.{property.Name} after decoding the example");
            checkedAny = true;
        }
        if (example.EnumerateObject().Any())
            Assert.That(checkedAny, Is.True, $"No field of the example was found on {body.GetType().Name}.");
    }

    /// <summary>Every value in the example comes back unchanged after C# decoded and re-encoded it.</summary>
    private static void AssertCarries(JsonNode expected, JsonNode actual, string path)
    {
        if (expected is JsonObject expectedObject)
        {
            Assert.That(actual, Is.InstanceOf<JsonObject>(), $"{path} should be an object");
            foreach (var (key, value) in expectedObject)
            {
                var other = actual.AsObject()[key];
                if (value is null) Assert.That(other, Is.Null, $"{path}.{key} should be null");
                else { Assert.That(other, Is.Not.Null, $"{path}.{key} was lost"); AssertCarries(value, other!, $"{path}.{key}"); }
            }
        }
        else if (expected is JsonArray expectedArray)
        {
            Assert.That(actual, Is.InstanceOf<JsonArray>(), $"{path} should be an array");
            Assert.That(actual.AsArray(), Has.Count.EqualTo(expectedArray.Count), $"{path} length");
            for (var i = 0; i < expectedArray.Count; i++) AssertCarries(expectedArray[i]!, actual.AsArray()[i]!, $"{path}[{i}]");
        }
        else
        {
            Assert.That(actual.ToJsonString(), Is.EqualTo(expected.ToJsonString()), $"{path} changed in the round trip");
        }
    }

    private static void AssertEnumMatches(string schemaName, string property, Type constants, string[]? exclude = null)
    {
        var values = ContractFiles.SchemaDocument(schemaName).GetProperty("properties").GetProperty(property).GetProperty("enum")
            .EnumerateArray().Select(e => e.GetString());
        Assert.That(values, Is.EquivalentTo(ConstantsOf(constants, exclude)), $"{schemaName}.{property} enum differs from {constants.Name}.");
    }

    private static IEnumerable<string> ConstantsOf(Type type, string[]? exclude = null) =>
        type.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string) && !(exclude ?? []).Contains(f.Name))
            .Select(f => (string)f.GetRawConstantValue()!);

    private static bool AllowsNull(JsonElement property)
    {
        if (property.TryGetProperty("type", out var type))
            return type.ValueKind == JsonValueKind.Array && type.EnumerateArray().Any(t => t.GetString() == "null");
        return property.TryGetProperty("anyOf", out var anyOf)
            && anyOf.EnumerateArray().Any(a => a.TryGetProperty("type", out var t) && t.GetString() == "null");
    }

    private static IEnumerable<(string Key, PropertyInfo Property)> KeysOf(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Key: p.GetCustomAttribute<KeyAttribute>()?.StringKey, Property: p))
            .Where(k => k.Key is not null)
            .Select(k => (k.Key!, k.Property));

    private static Type ContractType(string name) =>
        MessageTypes.TypeOf(name) ?? SampleMessages.NestedTypes.Single(t => t.Name == name);
}
