using System.Globalization;
using System.Text;
using Onex.Protocol;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Tool contracts shaped like real ones, for the memory probe: every tool's input schema has 6 to 14 properties
/// mixing strings with formats and patterns, bounded numbers, enums, arrays, a nested object and a local
/// <c>$ref</c>, each with a description; output schemas are smaller; three error codes each. About 2 to 4 KB of
/// schema text per tool, and no two tools alike (so no fingerprint or schema is shared).
/// </summary>
internal static class RealisticTools
{
    private static readonly string[] Verbs = ["create", "update", "get", "list", "delete", "charge", "refund", "notify", "sync", "export"];
    private static readonly string[] Nouns = ["invoice", "customer", "order", "shipment", "ticket", "report", "payment", "account", "device", "session"];

    public static ToolContractRegistration For(string nodeId, int nodeIndex, int toolIndex)
    {
        var seed = nodeIndex * 31 + toolIndex * 7;
        var noun = Nouns[(nodeIndex + toolIndex) % Nouns.Length];
        var verb = Verbs[toolIndex % Verbs.Length];
        return new ToolContractRegistration
        {
            Name = $"svc{nodeIndex:D3}.{noun}.{verb}",
            Version = $"{1 + toolIndex % 3}.{seed % 10}.{toolIndex}",
            Description = $"{Capitalised(verb)}s a {noun} in service {nodeIndex} and reports what changed, for dashboards and audits.",
            InputSchema = InputSchema(noun, seed, 6 + seed % 9),
            OutputSchema = OutputSchema(noun, seed),
            ErrorCodes =
            [
                new ToolErrorCode { Code = "NOT_FOUND", Description = $"No {noun} with that id exists in this tenant." },
                new ToolErrorCode { Code = "RATE_LIMITED", Description = "Too many calls for this tenant in the last minute; retry with backoff." },
                new ToolErrorCode { Code = $"{noun.ToUpperInvariant()}_LOCKED", Description = $"The {noun} is being changed by another call." },
            ],
            NodeId = nodeId,
        };
    }

    private static string InputSchema(string noun, int seed, int properties)
    {
        var text = new StringBuilder();
        text.Append("{\n  \"$schema\": \"http://json-schema.org/draft-07/schema#\",\n  \"type\": \"object\",\n");
        text.Append(CultureInfo.InvariantCulture, $"  \"title\": \"{noun} request {seed}\",\n  \"additionalProperties\": false,\n  \"properties\": {{\n");
        text.Append(CultureInfo.InvariantCulture, $"    \"{noun}Id\": {{ \"type\": \"string\", \"pattern\": \"^[a-z]{{3}}_[0-9a-f]{{{8 + seed % 8}}}$\", \"description\": \"Id of the {noun}.\" }},\n");
        text.Append("    \"tenant\": { \"$ref\": \"#/definitions/tenant\" }");
        for (var i = 0; i < properties; i++)
        {
            text.Append(",\n    ");
            text.Append(Property(noun, seed + i, i));
        }
        text.Append("\n  },\n");
        text.Append(CultureInfo.InvariantCulture, $"  \"required\": [\"{noun}Id\", \"tenant\", \"field0\"],\n");
        text.Append("  \"definitions\": {\n    \"tenant\": { \"type\": \"object\", \"properties\": { \"id\": { \"type\": \"string\", \"minLength\": 1 }, ");
        text.Append("\"region\": { \"type\": \"string\", \"enum\": [\"eu-west\", \"eu-central\", \"us-east\", \"ap-south\"] } }, \"required\": [\"id\"] }\n  }\n}");
        return text.ToString();
    }

    private static string Property(string noun, int seed, int index) => (seed % 7) switch
    {
        0 => $"\"field{index}\": {{ \"type\": \"string\", \"maxLength\": {32 + seed % 200}, \"description\": \"Free text about the {noun}, shown to operators.\" }}",
        1 => $"\"field{index}\": {{ \"type\": \"integer\", \"minimum\": 0, \"maximum\": {1000 + seed * 13}, \"description\": \"A count in units of the {noun}.\" }}",
        2 => $"\"field{index}\": {{ \"type\": \"string\", \"enum\": [\"draft\", \"open\", \"paid\", \"void\", \"state{seed % 50}\"], \"description\": \"Lifecycle state.\" }}",
        3 => $"\"field{index}\": {{ \"type\": \"array\", \"items\": {{ \"type\": \"string\", \"format\": \"email\" }}, \"maxItems\": {5 + seed % 20}, \"description\": \"Who is told.\" }}",
        4 => $"\"field{index}\": {{ \"type\": \"object\", \"properties\": {{ \"amount\": {{ \"type\": \"number\", \"exclusiveMinimum\": 0 }}, \"currency\": {{ \"type\": \"string\", \"pattern\": \"^[A-Z]{{3}}$\" }}, \"note{seed % 10}\": {{ \"type\": \"string\" }} }}, \"required\": [\"amount\", \"currency\"] }}",
        5 => $"\"field{index}\": {{ \"type\": \"boolean\", \"default\": {(seed % 2 == 0 ? "true" : "false")}, \"description\": \"Whether to skip the {noun}'s hooks.\" }}",
        _ => $"\"field{index}\": {{ \"type\": \"string\", \"format\": \"date-time\", \"description\": \"When the {noun} takes effect (RFC 3339, UTC).\" }}",
    };

    private static string OutputSchema(string noun, int seed) =>
        $"{{\"type\":\"object\",\"properties\":{{\"{noun}Id\":{{\"type\":\"string\"}},\"version\":{{\"type\":\"integer\",\"minimum\":{seed % 5}}}," +
        $"\"changed\":{{\"type\":\"array\",\"items\":{{\"type\":\"string\"}}}},\"at\":{{\"type\":\"string\",\"format\":\"date-time\"}}}},\"required\":[\"{noun}Id\",\"version\"]}}";

    private static string Capitalised(string word) => char.ToUpperInvariant(word[0]) + word[1..];
}
