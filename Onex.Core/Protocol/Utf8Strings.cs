using System.Buffers;
using System.Text;
using System.Text.Unicode;
using MessagePack;
using Onex.Errors;

namespace Onex.Protocol;

/// <summary>
/// MessagePack str is UTF-8 (PROTOCOL.md 2.1). MessagePack-CSharp decodes invalid bytes as U+FFFD without a word, so a
/// request with a broken string would be acted on with a different string than was sent; this finds such strings
/// (values and map keys, at any depth) so the message is MALFORMED instead, naming where the string is.
/// </summary>
internal static class Utf8Strings
{
    /// <summary>The reason given in <c>details.reason</c> for a string that is not valid UTF-8.</summary>
    public const string InvalidReason = "invalidUtf8";

    // The same nesting limit MessagePack-CSharp applies to untrusted data; the walk recurses once per level.
    private const int MaxDepth = 500;

    /// <summary>Reads a str, or returns false (with the lossy decoding in <paramref name="value"/>) when it is not valid UTF-8.</summary>
    public static bool TryRead(ref MessagePackReader reader, out string value)
    {
        var bytes = reader.ReadStringSequence();
        if (bytes is not { } sequence)
        {
            value = "";
            return true;
        }
        if (sequence.IsSingleSegment)
        {
            value = Encoding.UTF8.GetString(sequence.FirstSpan);
            return Utf8.IsValid(sequence.FirstSpan);
        }
        var copy = sequence.ToArray();
        value = Encoding.UTF8.GetString(copy);
        return Utf8.IsValid(copy);
    }

    /// <summary>
    /// Walks one value and returns the path, relative to it, of its first string that is not valid UTF-8
    /// (<c>""</c> for the value itself, <c>.key</c>, <c>[2].name</c>; a bad key is named by its lossy decoding), or null
    /// when every string is valid. The reader ends after the value either way. Builds paths only on the way back from a
    /// failure, so valid messages cost a scan and no allocation.
    /// </summary>
    public static string? FindInvalid(ref MessagePackReader reader) => Walk(ref reader, 0);

    /// <summary>Throws MALFORMED (<c>details.field</c> = <paramref name="prefix"/> + the path) when the value has an invalid string.</summary>
    public static void EnsureValid(ReadOnlyMemory<byte> value, string prefix)
    {
        var reader = new MessagePackReader(value);
        if (FindInvalid(ref reader) is { } path) throw Invalid(prefix + path);
    }

    /// <summary>MALFORMED for a string at <paramref name="field"/> that is not valid UTF-8.</summary>
    public static MalformedMessageException Invalid(string field) =>
        new($"Field '{field}' is not valid UTF-8 (MessagePack strings are UTF-8).",
            new Dictionary<string, string> { ["field"] = field, ["reason"] = InvalidReason });

    private static string? Walk(ref MessagePackReader reader, int depth)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.String:
                return IsValid(reader.ReadStringSequence()!.Value) ? null : "";
            case MessagePackType.Array:
            {
                if (depth >= MaxDepth) throw TooDeep();
                var count = reader.ReadArrayHeader();
                for (var i = 0; i < count; i++)
                    if (Walk(ref reader, depth + 1) is { } found) return $"[{i}]{found}";
                return null;
            }
            case MessagePackType.Map:
            {
                if (depth >= MaxDepth) throw TooDeep();
                var count = reader.ReadMapHeader();
                for (var i = 0; i < count; i++)
                {
                    if (reader.NextMessagePackType == MessagePackType.String)
                    {
                        // The key's bytes stay where they are in the message: it is decoded only to name a failure.
                        var name = reader.ReadStringSequence()!.Value;
                        if (!IsValid(name)) return "." + Encoding.UTF8.GetString(name);
                        if (Walk(ref reader, depth + 1) is { } found) return "." + Encoding.UTF8.GetString(name) + found;
                    }
                    else
                    {
                        // A non-string key is the decoder's MALFORMED; here it only needs walking like any value.
                        if (Walk(ref reader, depth + 1) is { } inKey) return $"[{i}]" + inKey;
                        if (Walk(ref reader, depth + 1) is { } found) return $"[{i}]" + found;
                    }
                }
                return null;
            }
            default:
                reader.Skip();
                return null;
        }
    }

    /// <summary>True when <paramref name="utf8"/> (a str's bytes, as read) is valid UTF-8; nothing is decoded.</summary>
    public static bool IsValid(in ReadOnlySequence<byte> utf8) => utf8.IsSingleSegment ? Utf8.IsValid(utf8.FirstSpan) : Utf8.IsValid(utf8.ToArray());

    private static MalformedMessageException TooDeep() =>
        new($"The message is nested deeper than {MaxDepth} levels.");
}
