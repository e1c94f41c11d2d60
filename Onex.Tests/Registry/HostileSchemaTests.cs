using System.Diagnostics;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Tools;
using Onex.Testing;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>Schemas and payloads chosen to make validation slow or to break it: the work stays bounded and the answer is an error from the catalogue.</summary>
public class HostileSchemaTests
{
    // With the backtracking engine this takes hours (time doubles per extra 'a').
    private const string Catastrophic = "^(a+)+$";
    private static readonly string Attack = new string('a', 40) + "!";

    // Level i+1 is anyOf two references to level i: a value matching no level visits 2^40 schemas; the text stays small.
    internal static readonly string ExponentialSchema =
        "{\"type\":\"object\",\"properties\":{\"v\":{\"$ref\":\"#/definitions/d40\"}},\"definitions\":{\"d0\":{\"type\":\"integer\"},"
        + string.Join(",", Enumerable.Range(1, 40).Select(i => $"\"d{i}\":{{\"anyOf\":[{{\"$ref\":\"#/definitions/d{i - 1}\"}},{{\"$ref\":\"#/definitions/d{i - 1}\"}}]}}"))
        + "}}";

    private static RegistryHarness WithTool(string inputSchema)
    {
        var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a", inputSchema: inputSchema);
        return h;
    }

    private static ValidationResult Validate(RegistryHarness h, string payload) =>
        h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = payload }));

    [Test]
    public void A_catastrophic_pattern_is_evaluated_in_linear_time()
    {
        using var h = WithTool($$$$"""{"type":"object","properties":{"s":{"type":"string","pattern":"{{{{Catastrophic}}}}"}}}""");
        var clock = Stopwatch.StartNew();

        var mismatch = Validate(h, $$$$"""{"s":"{{{{Attack}}}}"}""");
        var match = Validate(h, $$$$"""{"s":"{{{{new string('a', 10_000)}}}}"}""");

        Assert.That(mismatch.Errors.Select(e => (e.Path, e.Kind)), Is.EqualTo(new[] { ("#/s", "PatternMismatch") }));
        Assert.That(match.Valid, Is.True, string.Join("; ", match.Errors.Select(e => e.Message)));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "a backtracking engine would take hours here");
    }

    [Test]
    public void A_catastrophic_pattern_in_pattern_properties_is_evaluated_in_linear_time()
    {
        using var h = WithTool($$$$"""{"type":"object","patternProperties":{"{{{{Catastrophic}}}}":{"type":"integer"}},"additionalProperties":false}""");
        var clock = Stopwatch.StartNew();

        var result = Validate(h, $$$$"""{"{{{{Attack}}}}":1,"aaa":"x","aa":2}""");

        Assert.That(result.Errors.Select(e => (e.Path, e.Kind)), Is.EquivalentTo(new[]
        {
            ("#/" + Attack, "NoAdditionalPropertiesAllowed"), ("#/aaa", "AdditionalPropertiesNotValid"), ("#/aaa", "IntegerExpected"),
        }), string.Join("; ", result.Errors.Select(e => e.Message)));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "a backtracking engine would take hours here");
    }

    [Test]
    public void A_property_matched_by_a_pattern_is_not_an_additional_one()
    {
        using var h = WithTool("""{"type":"object","properties":{"id":{"type":"string"}},"patternProperties":{"^x-":{"type":"string"}},"additionalProperties":{"type":"integer"}}""");

        Assert.That(Validate(h, """{"id":"a","x-one":"b","other":3}""").Valid, Is.True);
        Assert.That(Validate(h, """{"x-one":5}""").Errors.Select(e => e.Kind), Does.Contain("StringExpected"));
        Assert.That(Validate(h, """{"other":"c"}""").Errors.Select(e => e.Kind), Does.Contain("IntegerExpected"));
    }

    [TestCase("""{"type":"string","pattern":"^(a)\\1$"}""", "#/pattern", TestName = "A_backreference_pattern_is_refused_at_registration")]
    [TestCase("""{"type":"object","properties":{"s":{"pattern":"^(?=a)a$"}}}""", "#/properties/s/pattern", TestName = "A_lookahead_pattern_is_refused_at_registration")]
    [TestCase("""{"type":"object","patternProperties":{"^(?>a+)$":{}}}""", "#/patternProperties/^(?>a+)$", TestName = "An_atomic_group_in_pattern_properties_is_refused_at_registration")]
    [TestCase("""{"type":"object","patternProperties":{"([":{}}}""", "#/patternProperties/([", TestName = "An_invalid_regex_in_pattern_properties_is_refused_at_registration")]
    public void A_pattern_the_registry_cannot_run_in_bounded_time_is_schema_invalid_naming_the_keyword(string schema, string pointer)
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: schema)));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid), ex.Message);
        Assert.That(ex.Details["pointer"], Is.EqualTo(pointer));
        Assert.That(ex.Details["reason"], Does.Contain("pattern"));
        Assert.That(h.Registry.Tools.Count, Is.Zero);
    }

    [TestCase("0")]
    [TestCase("-2")]
    [TestCase("1e-40")]
    public void A_multiple_of_that_is_not_above_zero_is_schema_invalid(string divisor)
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a",
            inputSchema: $$$$"""{"type":"object","properties":{"n":{"type":"number","multipleOf":{{{{divisor}}}}}}}""")));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["pointer"], Is.EqualTo("#/properties/n/multipleOf"));
    }

    [Test]
    public void A_thirty_digit_integer_is_validated_not_an_internal_error()
    {
        using var h = WithTool("""{"type":"object","properties":{"n":{"type":"integer"},"m":{"type":"integer","maximum":100},"s":{"type":"string"},"k":{"type":["integer","string"]},"d":{"type":"integer","multipleOf":2}}}""");
        const string big = "123456789012345678901234567890";

        Assert.That(Validate(h, $$$$"""{"n":{{{{big}}}},"k":{{{{big}}}},"d":-{{{{big}}}}}""").Valid, Is.True);
        Assert.That(Validate(h, $$$$"""{"m":{{{{big}}}}}""").Errors.Select(e => (e.Path, e.Kind)), Is.EqualTo(new[] { ("#/m", "NumberTooBig") }));
        Assert.That(Validate(h, $$$$"""{"s":{{{{big}}}}}""").Errors.Select(e => (e.Path, e.Kind)), Is.EqualTo(new[] { ("#/s", "StringExpected") }));
    }

    [Test]
    public void Validation_that_would_take_exponential_time_gives_up_within_its_budget()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        // Registering such a schema is allowed (it is valid); validating against it is what must stay bounded.
        var registered = h.Do(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: ExponentialSchema)));
        var clock = Stopwatch.StartNew();

        var ex = h.Fails(r => r.Handle(new ValidatePayload { ToolName = registered.Name, Payload = """{"v":"text"}""" }));

        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("payload"));
        Assert.That(ex.Details["reason"], Is.EqualTo("timeBudget"));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "the budget is 500 ms of CPU; 2^40 visits would take days");
    }

    [Test]
    public void A_payload_over_the_size_budget_is_invalid_argument()
    {
        using var h = WithTool(ToolContracts.PersonSchema);
        var ex = h.Fails(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = "\"" + new string('x', ToolCatalog.MaxPayloadChars) + "\"" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["reason"], Is.EqualTo("tooLarge"));
        Assert.That(ex.Details["max"], Is.EqualTo(ToolCatalog.MaxPayloadChars.ToString()));
    }

    [TestCase("""{"type":"object","dependencies":{"a":{"$ref":"http://example.com/s.json"}}}""", "#/dependencies/a/$ref")]
    [TestCase("""{"type":"object","dependencies":{"a":{"properties":{"b":{"$ref":"file:///etc/passwd"}}}}}""", "#/dependencies/a/properties/b/$ref")]
    public void A_remote_reference_inside_dependencies_is_schema_invalid(string schema, string pointer)
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: schema)));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
        Assert.That(ex.Details["pointer"], Is.EqualTo(pointer));
    }

    [Test]
    public void Dependencies_listing_property_names_are_accepted()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var record = h.Do(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: """{"type":"object","dependencies":{"a":["b"],"c":{"required":["d"]}}}""")));
        Assert.That(record.Name, Is.EqualTo("tool-a"));
    }

    [Test]
    public async Task A_node_process_answers_hostile_validations_and_other_clients_and_still_stops_promptly_on_sigterm()
    {
        var wait = TimeSpan.FromSeconds(30);
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        using var node = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--store", "memory");
        try
        {
            await node.WaitForLineAsync("registry: router", wait);
            using var attacker = new TestDealer(router);
            using var bystander = new TestDealer(router);
            attacker.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1", Name = "n1" });
            attacker.Call<ToolContractRegistration, ToolContractRecord>(ToolContracts.Registration("regex",
                inputSchema: "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"" + Catastrophic + "\"}}}"));
            attacker.Call<ToolContractRegistration, ToolContractRecord>(ToolContracts.Registration("nested",
                inputSchema: ExponentialSchema));

            var clock = Stopwatch.StartNew();
            var regex = attacker.Call<ValidatePayload, ValidationResult>(new ValidatePayload { ToolName = "regex", Payload = "{\"s\":\"" + Attack + "\"}" });
            var budget = TestDealer.ExpectError(attacker.Request(new ValidatePayload { ToolName = "nested", Payload = "{\"v\":\"x\"}" }));
            var lease = bystander.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n2" });

            Assert.That(regex.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "PatternMismatch" }));
            Assert.That((budget.Code, budget.Details["reason"]), Is.EqualTo((ErrorCodes.InvalidArgument, "timeBudget")));
            Assert.That(lease.Leases, Has.Count.EqualTo(1));
            Assert.That(clock.Elapsed, Is.LessThan(wait), "the hostile validations held up the registry");

            // Both again, unanswered, and SIGTERM straight after: the node still stops promptly and cleanly.
            attacker.Send(attacker.NextRequestId(), new ValidatePayload { ToolName = "nested", Payload = "{\"v\":\"y\"}" });
            attacker.Send(attacker.NextRequestId(), new ValidatePayload { ToolName = "regex", Payload = "{\"s\":\"" + Attack + "a!\"}" });
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(wait), Is.Zero, $"the node did not stop cleanly; stderr:\n{node.Errors}");
        }
        finally
        {
            node.KillIfRunning();
        }
    }
}
