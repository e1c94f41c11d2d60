using System.Text.Json;
using System.Text.RegularExpressions;
using Onex.Cli.Usage;
using Onex.Protocol;

namespace Onex.Cli.Commands;

/// <summary>
/// A tool contract file for <c>onex tools register FILE</c>: a JSON object with <c>name</c>, <c>version</c>,
/// <c>description</c>, <c>inputSchema</c> and <c>outputSchema</c> (JSON Schema objects, or JSON text), and
/// <c>errorCodes</c> (<c>[{"code", "description"}]</c>), checked by the rules of contracts/ToolContractRegistration.schema.json
/// before anything is sent; the registry then validates the schemas themselves (SCHEMA_INVALID).
/// Example: samples/tools/greet.tool.json.
/// </summary>
internal sealed partial record ToolContractFile(
    string Name, string Version, string Description, string InputSchema, string OutputSchema, IReadOnlyList<ToolErrorCode> ErrorCodes)
{
    /// <summary>Parses <paramref name="json"/>; a <see cref="UsageException"/> names the file, the field and what to write.</summary>
    public static ToolContractFile Parse(string json, string file)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{file} is not JSON: {ex.Message.ReplaceLineEndings(" ")} (see samples/tools/greet.tool.json).");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new UsageException($"{file}: a tool contract is a JSON object with name, version, inputSchema and outputSchema (see samples/tools/greet.tool.json).");
            var name = RequiredString(root, "name", file);
            if (name.Length > 128 || !ToolName().IsMatch(name))
                throw new UsageException($"{file}: name '{name}' must be 1 to 128 letters, digits, '.', '_' or '-', e.g. \"billing.charge\".");
            var version = RequiredString(root, "version", file);
            // The registry's own rule (strict SemVer 2.0.0 through the Semver library), so the two cannot disagree.
            if (!Onex.RegistryNode.Tools.ToolVersions.TryParse(version, out _))
                throw new UsageException($"{file}: version '{version}' is not a semantic version; write MAJOR.MINOR.PATCH, e.g. \"1.0.0\".");
            var description = root.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";
            return new ToolContractFile(name, version, description,
                Schema(root, "inputSchema", file), Schema(root, "outputSchema", file), ErrorCodesOf(root, file));
        }
    }

    private static string RequiredString(JsonElement root, string field, string file) =>
        root.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw new UsageException($"{file}: \"{field}\" is missing or not a non-empty string (see samples/tools/greet.tool.json).");

    /// <summary>A schema as JSON text: written inline as an object (the usual way) or as a string holding JSON.</summary>
    private static string Schema(JsonElement root, string field, string file)
    {
        if (!root.TryGetProperty(field, out var schema))
            throw new UsageException($"{file}: \"{field}\" is missing; give a JSON Schema object, e.g. \"{field}\": {{\"type\": \"object\"}}.");
        if (schema.ValueKind == JsonValueKind.Object) return schema.GetRawText();
        if (schema.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var inner = JsonDocument.Parse(schema.GetString()!);
                if (inner.RootElement.ValueKind == JsonValueKind.Object) return schema.GetString()!;
            }
            catch (JsonException)
            {
                // reported below
            }
        }
        throw new UsageException($"{file}: \"{field}\" must be a JSON Schema object, e.g. \"{field}\": {{\"type\": \"object\"}}.");
    }

    private static IReadOnlyList<ToolErrorCode> ErrorCodesOf(JsonElement root, string file)
    {
        if (!root.TryGetProperty("errorCodes", out var codes) || codes.ValueKind == JsonValueKind.Null) return [];
        if (codes.ValueKind != JsonValueKind.Array)
            throw new UsageException($"{file}: \"errorCodes\" must be an array of {{\"code\": \"...\", \"description\": \"...\"}}.");
        var result = new List<ToolErrorCode>();
        foreach (var item in codes.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("code", out var code) || code.ValueKind != JsonValueKind.String
                || code.GetString() is not { Length: > 0 } text)
                throw new UsageException($"{file}: every entry of \"errorCodes\" needs a \"code\" string, e.g. {{\"code\": \"RATE_LIMITED\", \"description\": \"...\"}}.");
            if (result.Any(c => c.Code == text))
                throw new UsageException($"{file}: error code '{text}' is listed twice; codes must be distinct.");
            var description = item.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";
            result.Add(new ToolErrorCode { Code = text, Description = description });
        }
        return result;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex ToolName();
}
