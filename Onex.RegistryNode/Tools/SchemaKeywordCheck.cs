using System.Text.Json;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// Checks that the standard JSON Schema keywords of a schema have values of the right shape (draft 4 to
/// 2020-12), returning the JSON pointer of the first one that does not. NJsonSchema is lenient when it loads
/// a schema (it reads <c>"type": 5</c> as an enum flag, for one), so without this an invalid schema would be
/// accepted and only misbehave later. Unknown keywords are allowed, as the spec says. A <c>$ref</c> must be local
/// (start with <c>#</c>): the registry never reads files or the network for a request.
/// </summary>
internal static class SchemaKeywordCheck
{
    private static readonly HashSet<string> TypeNames = ["null", "boolean", "object", "array", "number", "string", "integer"];
    private static readonly HashSet<string> SchemaMaps = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"];
    private static readonly HashSet<string> SchemaArrays = ["allOf", "anyOf", "oneOf", "prefixItems"];
    private static readonly HashSet<string> Schemas = ["not", "additionalProperties", "additionalItems", "contains", "propertyNames", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties"];
    private static readonly HashSet<string> Counts = ["maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties", "minContains", "maxContains"];
    private static readonly HashSet<string> Numbers = ["minimum", "maximum", "multipleOf"];
    private static readonly HashSet<string> Strings = ["$id", "id", "$schema", "title", "description", "format", "$anchor", "$comment"];

    /// <summary>The pointer and problem of the first malformed keyword, or null when every known keyword is well-formed.</summary>
    public static (string Pointer, string Problem)? FindProblem(JsonElement schema, string pointer = "#", int depth = 0)
    {
        if (depth > 64) return (pointer, "the schema nests deeper than 64 levels");
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False) return null;
        if (schema.ValueKind != JsonValueKind.Object) return (pointer, "a schema must be an object or a boolean");

        foreach (var keyword in schema.EnumerateObject())
        {
            var at = pointer + "/" + keyword.Name.Replace("~", "~0").Replace("/", "~1");
            var value = keyword.Value;
            var problem = keyword.Name switch
            {
                "type" => CheckType(value),
                // The registry never fetches anything: only references inside the document are allowed.
                "$ref" => value.ValueKind == JsonValueKind.String && value.GetString()!.StartsWith('#')
                    ? null : "must be a local reference starting with '#' (external references are not fetched)",
                "required" => value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String)
                    ? null : "must be an array of strings",
                "enum" => value.ValueKind == JsonValueKind.Array ? null : "must be an array",
                "pattern" => CheckPattern(value),
                "exclusiveMinimum" or "exclusiveMaximum" => value.ValueKind is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False
                    ? null : "must be a number (or a boolean in draft 4)",
                "uniqueItems" => value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : "must be a boolean",
                "items" => value.ValueKind is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Array
                    ? null : "must be a schema or an array of schemas",
                _ when Counts.Contains(keyword.Name) => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) && n >= 0
                    ? null : "must be a non-negative integer",
                // Draft 4 to 2020-12: multipleOf must be strictly greater than 0 (a zero or negative one can never validate).
                // NJsonSchema divides as decimal, so it must also be a decimal above 0 (at least 1e-28, at most 7.9e28).
                "multipleOf" => value.ValueKind == JsonValueKind.Number && value.TryGetDecimal(out var divisor) && divisor > 0
                    ? null : "must be a number greater than 0 (between 1e-28 and 7.9e28)",
                "dependencies" => CheckDependencies(value),
                _ when Numbers.Contains(keyword.Name) => value.ValueKind == JsonValueKind.Number ? null : "must be a number",
                _ when Strings.Contains(keyword.Name) => value.ValueKind == JsonValueKind.String ? null : "must be a string",
                _ when SchemaMaps.Contains(keyword.Name) => value.ValueKind == JsonValueKind.Object ? null : "must be an object of schemas",
                _ when SchemaArrays.Contains(keyword.Name) => value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0
                    ? null : "must be a non-empty array of schemas",
                _ when Schemas.Contains(keyword.Name) => value.ValueKind is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False
                    ? null : "must be a schema (an object or a boolean)",
                _ => null,
            };
            if (problem is not null) return (at, $"'{keyword.Name}' {problem}");

            if (keyword.Name == "patternProperties")
            {
                foreach (var entry in value.EnumerateObject())
                    if (CheckRegex(entry.Name) is { } bad)
                        return (at + "/" + entry.Name.Replace("~", "~0").Replace("/", "~1"), $"'patternProperties' key {bad}");
            }

            // Descend into the places that hold schemas.
            if (SchemaMaps.Contains(keyword.Name) || keyword.Name == "dependencies")
            {
                foreach (var entry in value.EnumerateObject())
                    if (entry.Value.ValueKind != JsonValueKind.Array && FindProblem(entry.Value, at + "/" + entry.Name.Replace("~", "~0").Replace("/", "~1"), depth + 1) is { } found) return found;
            }
            else if (SchemaArrays.Contains(keyword.Name) || (keyword.Name == "items" && value.ValueKind == JsonValueKind.Array))
            {
                var index = 0;
                foreach (var item in value.EnumerateArray())
                    if (FindProblem(item, $"{at}/{index++}", depth + 1) is { } found) return found;
            }
            else if (Schemas.Contains(keyword.Name) || keyword.Name == "items")
            {
                if (FindProblem(value, at, depth + 1) is { } found) return found;
            }
        }
        return null;
    }

    private static string? CheckType(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
            return TypeNames.Contains(value.GetString()!) ? null : $"names an unknown type '{value.GetString()}'";
        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0)
        {
            foreach (var item in value.EnumerateArray())
                if (item.ValueKind != JsonValueKind.String || !TypeNames.Contains(item.GetString()!))
                    return "must list known type names";
            return null;
        }
        return "must be a type name or a non-empty array of type names";
    }

    private static string? CheckPattern(JsonElement value) =>
        value.ValueKind != JsonValueKind.String ? "must be a string" : CheckRegex(value.GetString()!);

    // The registry runs patterns only with the non-backtracking engine (BoundedSchema): one it cannot run is refused here.
    private static string? CheckRegex(string pattern)
    {
        BoundedSchema.Compile(pattern, out var problem);
        return problem;
    }

    // Draft 7 "dependencies": each value is a schema or an array of property names.
    private static string? CheckDependencies(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object) return "must be an object";
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind == JsonValueKind.Array)
            {
                if (!entry.Value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String)) return "must map to schemas or arrays of strings";
            }
            else if (entry.Value.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
            {
                return "must map to schemas or arrays of strings";
            }
        }
        return null;
    }
}
