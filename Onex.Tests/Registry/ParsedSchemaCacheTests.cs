using NJsonSchema;
using Onex.Protocol;
using Onex.RegistryNode.Tools;

namespace Onex.Tests.Registry;

public class ParsedSchemaCacheTests
{
    private static JsonSchema Schema() => JsonSchema.FromJsonAsync("""{"type":"object"}""").GetAwaiter().GetResult();

    [Test]
    public void Least_recently_used_schemas_are_evicted_beyond_capacity()
    {
        var cache = new ParsedSchemaCache(capacity: 2);
        cache.Put("a", Schema(), Schema());
        cache.Put("b", Schema(), Schema());
        cache.Get("a", () => throw new AssertionException("'a' should still be held"));
        cache.Put("c", Schema(), Schema());

        var reparsed = false;
        cache.Get("b", () => { reparsed = true; return (Schema(), Schema()); });

        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(reparsed, Is.True, "'b' was the least recently used and should have been evicted");
    }

    [Test]
    public void A_contract_whose_schemas_were_evicted_still_validates_against_its_own_schemas()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterTool("tool-a", inputSchema: """{"type":"object","properties":{"age":{"type":"integer"}}}""");
        for (var i = 0; i < ToolCatalog.DefaultParsedSchemaCapacity; i++)
            h.RegisterTool($"filler-{i}");

        var result = h.Do(r => r.Handle(new ValidatePayload { ToolName = "tool-a", Payload = """{"age": "old"}""" }));

        Assert.That(result.Errors.Select(e => e.Kind), Is.EqualTo(new[] { "IntegerExpected" }));
        Assert.That(h.Registry.Tools.ParsedSchemaCount, Is.LessThanOrEqualTo(ToolCatalog.DefaultParsedSchemaCapacity));
    }
}
