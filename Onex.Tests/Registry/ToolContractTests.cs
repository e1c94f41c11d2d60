using System.Security.Cryptography;
using System.Text;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Tools;

namespace Onex.Tests.Registry;

public class ToolContractTests
{
    [Test]
    public void Registering_the_same_contract_twice_returns_the_same_record_without_a_second_broadcast()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var first = h.RegisterTool("tool-a");
        var count = h.Sink.Changes.Count;
        var second = h.RegisterTool("tool-a");
        Assert.That(second, Is.EqualTo(first));
        Assert.That(h.Sink.Changes, Has.Count.EqualTo(count), "an idempotent registration was broadcast");
    }

    [Test]
    public void A_different_contract_under_the_same_name_and_version_is_a_conflict_naming_both_fingerprints()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var first = h.RegisterTool("tool-a");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: """{"type":"object"}""")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.ContractConflict));
        Assert.That(ex.Details["tool"], Is.EqualTo("tool-a@1.0.0"));
        Assert.That(ex.Details["fingerprint"], Is.EqualTo(first.Fingerprint));
        Assert.That(ex.Details["presentedFingerprint"], Does.StartWith("sha256:").And.Not.EqualTo(first.Fingerprint));
    }

    [Test]
    public void The_same_contract_from_another_node_is_not_owner()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.Announce("n2");
        h.RegisterTool("tool-a", nodeId: "n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", nodeId: "n2")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotOwner));
        Assert.That(ex.Details["owner"], Is.EqualTo("n1"));
    }

    [Test]
    public void Registering_a_tool_requires_an_announced_node()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotFound));
        Assert.That(ex.Details["nodeId"], Is.EqualTo("n1"));
    }

    [Test]
    public void A_new_version_with_a_different_contract_is_accepted()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a", "1.0.0");
        var second = h.Do(r => r.Handle(ToolContracts.Registration("tool-a", "1.1.0", inputSchema: """{"type":"object"}""")));
        Assert.That(second.Version, Is.EqualTo("1.1.0"));
        Assert.That(h.Registry.Tools.Count, Is.EqualTo(2));
    }

    [Test]
    public void Schema_json_that_does_not_parse_is_schema_invalid_with_line_and_position()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: "{\n  \"type\": \"object\",\n  \"properties\": {,\n}")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["schema"], Is.EqualTo("input"));
        Assert.That(ex.Details["line"], Is.EqualTo("3"), ex.Message);
        Assert.That(ex.Details, Does.ContainKey("position"));
    }

    [Test]
    public void A_schema_with_an_invalid_keyword_value_is_schema_invalid_naming_the_schema()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var registration = ToolContracts.Registration("tool-a") with { OutputSchema = """{"type": 5}""" };
        var ex = h.Fails(r => r.Handle(registration));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["schema"], Is.EqualTo("output"));
        Assert.That(ex.Details["pointer"], Is.EqualTo("#/type"), ex.Message);
    }

    [Test]
    public void A_malformed_keyword_deep_in_a_schema_is_schema_invalid_with_its_pointer()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: """{"properties": {"a": {"items": {"minLength": -1}}}}""")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["pointer"], Is.EqualTo("#/properties/a/items/minLength"), ex.Message);
    }

    [Test]
    public void A_schema_that_is_not_an_object_is_schema_invalid()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: "[1, 2]")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
    }

    [Test]
    public void A_schema_referencing_an_external_document_is_refused()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: """{"properties": {"a": {"$ref": "http://127.0.0.1:9/x.json"}}}""")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["field"], Is.EqualTo("inputSchema"));
        Assert.That(ex.Details["pointer"], Is.EqualTo("#/properties/a/$ref"), ex.Message);
    }

    [Test]
    public void A_schema_with_a_local_reference_is_accepted_and_used()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a", inputSchema: """{"definitions": {"id": {"type": "integer"}}, "type": "object", "properties": {"id": {"$ref": "#/definitions/id"}}}""");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"id": "x"}""" }));
        Assert.That(result.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "IntegerExpected" }));
    }

    [Test]
    public void A_version_that_is_not_semantic_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", "v1")));
        Assert.That(ex.Details["field"], Is.EqualTo("version"));
    }

    [Test]
    public void Minifying_a_schema_removes_whitespace_outside_strings_only()
    {
        var minified = ContractFingerprint.Minify("{ \"a b\" :\n\t[1, \"x \\\" y\"],\r\n \"c\": 2.50 }");
        Assert.That(minified, Is.EqualTo("{\"a b\":[1,\"x \\\" y\"],\"c\":2.50}"));
    }

    [Test]
    public void The_fingerprint_matches_the_protocol_test_vector()
    {
        const string input = "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"invoiceId\": { \"type\": \"string\" },\n    \"amountCents\": { \"type\": \"integer\", \"minimum\": 1 }\n  },\n  \"required\": [\"invoiceId\", \"amountCents\"]\n}";
        const string output = """{"type":"object","properties":{"receiptId":{"type":"string"}},"required":["receiptId"]}""";
        ToolErrorCode[] errors =
        [
            new() { Code = "RATE_LIMITED", Description = "Too many charges for this customer in the last minute." },
            new() { Code = "CARD_DECLINED", Description = "The card issuer refused the charge." },
        ];
        Assert.That(ContractFingerprint.Compute("billing.charge", "1.2.0", input, output, errors),
            Is.EqualTo("sha256:7b083b253dc1db444664e74164f65c45cc8adc2a0d57177459eb61e8a312315b"), "PROTOCOL.md section 9 test vector");
    }

    [Test]
    public void A_registered_contract_carries_the_fingerprint_of_its_canonical_text()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var record = h.Do(r => r.Handle(ToolContracts.Registration("echo") with
        {
            InputSchema = """{ "type": "object" }""",
            OutputSchema = """{"type":"string"}""",
            ErrorCodes = [new ToolErrorCode { Code = "Z", Description = "z" }, new ToolErrorCode { Code = "A", Description = "a\u00e9" }],
        }));
        const string canonical =
            """{"name":"echo","version":"1.0.0","inputSchema":{"type":"object"},"outputSchema":{"type":"string"},"errorCodes":[{"code":"A","description":"aé"},{"code":"Z","description":"z"}]}""";
        var expected = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
        Assert.That(record.Fingerprint, Is.EqualTo(expected));
    }

    [Test]
    public void Reformatting_a_schema_keeps_the_fingerprint()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var compact = h.RegisterTool("tool-a", inputSchema: """{"type":"object","required":["a"]}""");
        var spaced = h.Do(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: "{\n  \"type\" : \"object\",\n  \"required\" : [ \"a\" ]\n}")));
        Assert.That(spaced.Fingerprint, Is.EqualTo(compact.Fingerprint));
    }

    [Test]
    public void A_payload_violating_the_input_schema_is_reported_with_path_and_kind()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"age": "old"}""" }));
        Assert.That(result.Valid, Is.False);
        Assert.That(result.Errors.Select(e => (e.Path, e.Kind)), Does.Contain(("#/name", "PropertyRequired")));
        Assert.That(result.Errors.Select(e => (e.Path, e.Kind)), Does.Contain(("#/age", "IntegerExpected")));
    }

    [Test]
    public void A_payload_satisfying_the_schema_is_valid()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var tool = h.RegisterTool("tool-a");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"name": "ada", "age": 36}""" }));
        Assert.That(result.Valid, Is.True, string.Join("; ", result.Errors.Select(e => e.Message)));
        Assert.That(result.Fingerprint, Is.EqualTo(tool.Fingerprint));
    }

    [Test]
    public void Validating_against_the_output_schema_uses_the_output_schema()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Direction = PayloadDirections.Output, Payload = """{"ok": "yes"}""" }));
        Assert.That(result.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "BooleanExpected" }));
    }

    [Test]
    public void Validation_without_a_version_uses_the_highest_semantic_version()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a", "1.9.0");
        h.RegisterTool("tool-a", "1.10.0", inputSchema: """{"type":"object"}""");
        h.RegisterTool("tool-a", "1.10.0-rc.1", inputSchema: """{"type":"string"}""");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = "{}" }));
        Assert.That(result.Version, Is.EqualTo("1.10.0"));
        Assert.That(result.Valid, Is.True);
    }

    [Test]
    public void Validating_against_an_unknown_tool_is_not_found()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new ValidatePayload { ToolName = "nope", Payload = "{}" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotFound));
    }

    [Test]
    public void A_payload_that_is_not_json_is_invalid_with_one_invalid_json_issue()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a");
        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = "{name: 'x'" }));
        Assert.That(result.Valid, Is.False);
        Assert.That(result.Errors.Select(e => (e.Path, e.Kind)), Is.EqualTo(new[] { ("#", "InvalidJson") }));
    }

    [Test]
    public void An_error_code_that_is_not_upper_snake_case_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a") with { ErrorCodes = [new ToolErrorCode { Code = "rate-limited" }] }));
        Assert.That(ex.Details["field"], Is.EqualTo("errorCodes"));
    }
}
