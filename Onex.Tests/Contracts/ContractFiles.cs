using System.Collections.Concurrent;
using System.Text.Json;
using NJsonSchema;

namespace Onex.Tests.Contracts;

/// <summary>The <c>contracts/</c> folder as copied next to the test assembly, with its schemas loaded once.</summary>
internal static class ContractFiles
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<JsonSchema>>> Schemas = new();

    public static string Directory => Path.Combine(TestContext.CurrentContext.TestDirectory, "contracts");

    public static string SchemaPath(string name) => Path.Combine(Directory, name + ".schema.json");

    public static string ProtocolPath => Path.Combine(Directory, "PROTOCOL.md");

    /// <summary>The NJsonSchema view of <c>{name}.schema.json</c>; file <c>$ref</c>s resolve against the folder.</summary>
    public static Task<JsonSchema> SchemaAsync(string name) =>
        Schemas.GetOrAdd(name, n => new Lazy<Task<JsonSchema>>(() => JsonSchema.FromFileAsync(SchemaPath(n)))).Value;

    /// <summary>The raw JSON of a schema file (for keywords NJsonSchema does not model, such as <c>examples</c>).</summary>
    public static JsonElement SchemaDocument(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(SchemaPath(name)));
        return document.RootElement.Clone();
    }

    /// <summary>Every schema file name without the <c>.schema.json</c> suffix.</summary>
    public static IEnumerable<string> SchemaNames() =>
        System.IO.Directory.EnumerateFiles(Directory, "*.schema.json")
            .Select(p => Path.GetFileName(p)[..^".schema.json".Length])
            .Order(StringComparer.Ordinal);

    /// <summary>Validates JSON text against a schema and returns the errors as readable lines (empty when valid).</summary>
    public static async Task<IReadOnlyList<string>> ValidateAsync(string name, string json)
    {
        var schema = await SchemaAsync(name);
        return schema.Validate(json).Select(e => e.ToString()).ToArray();
    }
}
