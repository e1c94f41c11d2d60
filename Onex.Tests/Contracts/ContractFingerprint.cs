using System.Security.Cryptography;
using System.Text;
using Onex.Protocol;

namespace Onex.Tests.Contracts;

/// <summary>
/// Reference implementation of the tool contract fingerprint exactly as contracts/PROTOCOL.md defines it, used to
/// check the document's test vector and the schema examples. (The registry computes fingerprints itself.)
/// </summary>
internal static class ContractFingerprint
{
    public static string Of(ToolContractRegistration contract) =>
        Of(contract.Name, contract.Version, contract.InputSchema, contract.OutputSchema, contract.ErrorCodes);

    public static string Of(string name, string version, string inputSchema, string outputSchema, IEnumerable<ToolErrorCode> errorCodes) =>
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical(name, version, inputSchema, outputSchema, errorCodes))));

    public static string Canonical(string name, string version, string inputSchema, string outputSchema, IEnumerable<ToolErrorCode> errorCodes)
    {
        var text = new StringBuilder();
        text.Append("{\"name\":").Append(Quote(name))
            .Append(",\"version\":").Append(Quote(version))
            .Append(",\"inputSchema\":").Append(Minify(inputSchema))
            .Append(",\"outputSchema\":").Append(Minify(outputSchema))
            .Append(",\"errorCodes\":[");
        // Codes are ASCII by contract, where UTF-16 ordinal order equals code point order.
        var first = true;
        foreach (var code in errorCodes.OrderBy(c => c.Code, StringComparer.Ordinal))
        {
            if (!first) text.Append(',');
            first = false;
            text.Append("{\"code\":").Append(Quote(code.Code)).Append(",\"description\":").Append(Quote(code.Description)).Append('}');
        }
        return text.Append("]}").ToString();
    }

    /// <summary>Drops space, tab, LF and CR outside string literals; every other character stays as written.</summary>
    public static string Minify(string json)
    {
        var result = new StringBuilder(json.Length);
        bool inString = false, escaped = false;
        foreach (var c in json)
        {
            if (inString)
            {
                result.Append(c);
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') inString = false;
            }
            else if (c is not (' ' or '\t' or '\n' or '\r'))
            {
                result.Append(c);
                if (c == '"') inString = true;
            }
        }
        return result.ToString();
    }

    /// <summary>A JSON string literal with the RFC 8785 escapes: only quote, backslash and control characters.</summary>
    public static string Quote(string value)
    {
        var result = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            result.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\b' => "\\b",
                '\f' => "\\f",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return result.Append('"').ToString();
    }
}
