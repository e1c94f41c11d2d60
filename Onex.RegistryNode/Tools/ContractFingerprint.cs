using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Onex.Protocol;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// The fingerprint of a tool contract: <c>sha256:</c> + lowercase hex SHA-256 of the UTF-8 bytes of the
/// canonical JSON <c>{"errorCodes":[{"code","description"}... sorted by code],"inputSchema":...,"name":...,
/// "outputSchema":...,"version":...}</c>. Canonical JSON here: no whitespace, object keys sorted by UTF-16 code
/// units (ordinal) at every depth, array order kept, strings escaped only where JSON requires (<c>"</c>,
/// <c>\</c>, control characters as <c>\b \f \n \r \t</c> or <c>\u00xx</c>), numbers exactly as written.
/// The description and the owner are not part of the contract.
/// </summary>
internal static class ContractFingerprint
{
    private static readonly JsonDocumentOptions ParseOptions = new() { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 };

    /// <summary>Computes the fingerprint of already canonical schemas (see <see cref="Canonicalize"/>).</summary>
    public static string Compute(string name, string version, string canonicalInput, string canonicalOutput, IReadOnlyList<ToolErrorCode> errorCodes)
    {
        var json = new StringBuilder(canonicalInput.Length + canonicalOutput.Length + 128);
        json.Append("{\"errorCodes\":[");
        var first = true;
        foreach (var error in errorCodes.OrderBy(e => e.Code, StringComparer.Ordinal).ThenBy(e => e.Description, StringComparer.Ordinal))
        {
            if (!first) json.Append(',');
            first = false;
            json.Append("{\"code\":");
            AppendString(json, error.Code);
            json.Append(",\"description\":");
            AppendString(json, error.Description ?? "");
            json.Append('}');
        }
        json.Append("],\"inputSchema\":").Append(canonicalInput);
        json.Append(",\"name\":");
        AppendString(json, name);
        json.Append(",\"outputSchema\":").Append(canonicalOutput);
        json.Append(",\"version\":");
        AppendString(json, version);
        json.Append('}');
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(json.ToString())));
    }

    /// <summary>The canonical form of a JSON document. Throws <see cref="JsonException"/> (with line and position) when it is not strict JSON.</summary>
    public static string Canonicalize(string json)
    {
        using var document = JsonDocument.Parse(json, ParseOptions);
        var builder = new StringBuilder(json.Length);
        Write(builder, document.RootElement);
        return builder.ToString();
    }

    private static void Write(StringBuilder json, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                json.Append('{');
                var first = true;
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    if (!seen.Add(property.Name))
                        throw new JsonException($"Duplicate key '{property.Name}' in an object.");
                    if (!first) json.Append(',');
                    first = false;
                    AppendString(json, property.Name);
                    json.Append(':');
                    Write(json, property.Value);
                }
                json.Append('}');
                break;
            case JsonValueKind.Array:
                json.Append('[');
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (index++ > 0) json.Append(',');
                    Write(json, item);
                }
                json.Append(']');
                break;
            case JsonValueKind.String:
                AppendString(json, element.GetString()!);
                break;
            default:
                json.Append(element.GetRawText()); // numbers as written; true, false, null
                break;
        }
    }

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
