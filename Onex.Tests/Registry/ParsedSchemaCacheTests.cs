using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Tools;

namespace Onex.Tests.Registry;

public class ParsedSchemaCacheTests
{
    private static BoundedSchema Schema() => BoundedSchema.Load("""{"type":"object"}""", "input");

    [Test]
    public void Least_recently_used_schemas_are_evicted_beyond_the_byte_bound()
    {
        var cost = Schema().EstimatedBytes * 2;
        var cache = new ParsedSchemaCache(maxBytes: cost * 2 + cost / 2);
        cache.Put("a", Schema(), Schema());
        cache.Put("b", Schema(), Schema());
        cache.Get("a", () => throw new AssertionException("'a' should still be held"));
        cache.Put("c", Schema(), Schema());

        var reparsed = false;
        cache.Get("b", () => { reparsed = true; return (Schema(), Schema()); });

        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(reparsed, Is.True, "'b' was the least recently used and should have been evicted");
        Assert.That(cache.Bytes, Is.LessThanOrEqualTo(cache.MaxBytes));
    }

    [Test]
    public void A_schema_larger_than_the_whole_bound_is_not_kept()
    {
        var cache = new ParsedSchemaCache(maxBytes: 1);
        cache.Put("a", Schema(), Schema());
        Assert.That(cache.Count, Is.Zero);
        Assert.That(cache.Bytes, Is.Zero);
    }

    [Test]
    public void The_estimated_cost_of_a_parsed_schema_grows_with_its_size()
    {
        var properties = string.Join(",", Enumerable.Range(0, 500).Select(i => $"\"p{i}\":{{\"type\":\"string\",\"maxLength\":{i + 1}}}"));
        var large = BoundedSchema.Load($"{{\"type\":\"object\",\"properties\":{{{properties}}}}}", "input");
        Assert.That(large.EstimatedBytes, Is.GreaterThan(Schema().EstimatedBytes * 50),
            "a schema of 500 properties should be charged far more than an empty one");
    }

    [Test]
    public void A_contract_whose_schemas_were_evicted_still_validates_against_its_own_schemas()
    {
        const long bound = 512 * 1024;
        using var h = new RegistryHarness(RegistryNodeOptions.Default with { ParsedSchemaMaxBytes = bound });
        h.Announce("n1");
        h.RegisterTool("tool-a", inputSchema: """{"type":"object","properties":{"age":{"type":"integer"}}}""");
        h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = "{}" }));
        for (var i = 0; i < 100; i++)
        {
            h.RegisterTool($"filler-{i}", inputSchema: ToolContracts.PersonSchema.Replace("\"age\"", $"\"age{i}\""));
            h.Do(r => r.Handle(new ValidatePayload { ToolName = $"filler-{i}", Payload = "{}" }));
        }
        Assert.That(h.Registry.Tools.ParsedSchemaCount, Is.GreaterThan(1), "validated contracts' schemas should be held");
        Assert.That(h.Registry.Tools.ParsedSchemaCount, Is.LessThan(100), "the fillers should not all fit in the bound");

        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"age": "old"}""" }));

        Assert.That(result.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "IntegerExpected" }));
        Assert.That(h.Registry.Tools.ParsedSchemaBytes, Is.LessThanOrEqualTo(bound));
    }

    [Test]
    public void Registering_a_contract_keeps_no_parsed_schemas_until_it_validates_a_payload()
    {
        using var h = new RegistryHarness(RegistryNodeOptions.Default);
        h.Announce("n1");
        h.RegisterTool("tool-a", inputSchema: """{"type":"object","properties":{"age":{"type":"integer"}}}""");
        Assert.That(h.Registry.Tools.ParsedSchemaCount, Is.Zero, "a registration should not keep the parsed schemas");

        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"age": "old"}""" }));

        Assert.That(result.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "IntegerExpected" }));
        Assert.That(h.Registry.Tools.ParsedSchemaCount, Is.EqualTo(1), "a validation should keep the contract's parsed schemas");
    }
}
