using System.Security.Cryptography;
using System.Text;
using Onex.Protocol;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// The fingerprint of a tool contract, exactly as PROTOCOL.md section 9 defines it:
/// <c>sha256:</c> + lowercase hex SHA-256 of the UTF-8 bytes of
/// <c>{"name":S(name),"version":S(version),"inputSchema":M(input),"outputSchema":M(output),"errorCodes":[E...]}</c>,
/// where S is a JSON string with JCS escaping, M is the schema text with JSON whitespace outside string literals
/// removed (nothing else changed), and each E is <c>{"code":S,"description":S}</c>, sorted by code (ordinal).
/// Formatting-only schema changes keep the fingerprint; any other change makes a new one.
/// </summary>
internal static class ContractFingerprint
{
    /// <summary>Computes the fingerprint of a contract.</summary>
    public static string Compute(string name, string version, string inputSchema, string outputSchema, IReadOnlyList<ToolErrorCode> errorCodes) =>
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical(name, version, inputSchema, outputSchema, errorCodes))));

    /// <summary>The canonical text that is hashed.</summary>
    public static string Canonical(string name, string version, string inputSchema, string outputSchema, IReadOnlyList<ToolErrorCode> errorCodes)
    {
        var json = new StringBuilder(inputSchema.Length + outputSchema.Length + 128);
        json.Append("{\"name\":");
        AppendString(json, name);
        json.Append(",\"version\":");
        AppendString(json, version);
        json.Append(",\"inputSchema\":");
        AppendMinified(json, inputSchema);
        json.Append(",\"outputSchema\":");
        AppendMinified(json, outputSchema);
        json.Append(",\"errorCodes\":[");
        var first = true;
        foreach (var error in errorCodes.OrderBy(e => e.Code, StringComparer.Ordinal))
        {
            if (!first) json.Append(',');
            first = false;
            json.Append("{\"code\":");
            AppendString(json, error.Code);
            json.Append(",\"description\":");
            AppendString(json, error.Description ?? "");
            json.Append('}');
        }
        json.Append("]}");
        return json.ToString();
    }

    /// <summary>M(x): drops space, tab, line feed and carriage return outside string literals; keeps everything else as written.</summary>
    public static string Minify(string json)
    {
        var builder = new StringBuilder(json.Length);
        AppendMinified(builder, json);
        return builder.ToString();
    }

    private static void AppendMinified(StringBuilder output, string json)
    {
        var inString = false;
        var escaped = false;
        foreach (var c in json)
        {
            if (inString)
            {
                output.Append(c);
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') inString = false;
                continue;
            }
            if (c is ' ' or '\t' or '\n' or '\r') continue;
            if (c == '"') inString = true;
            output.Append(c);
        }
    }

    /// <summary>S(x): a JSON string literal with RFC 8785 escaping (only <c>"</c>, <c>\</c> and control characters).</summary>
    private static void AppendString(StringBuilder json, string value)
    {
        json.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                default:
                    if (c < 0x20) json.Append("\\u00").Append(((int)c).ToString("x2"));
                    else json.Append(c);
                    break;
            }
        }
        json.Append('"');
    }
}
