namespace Onex.Bus;

/// <summary>
/// Topic and pattern syntax, the same on every backend (it is NATS subject syntax, so JetStream maps it 1:1).
/// A topic is one or more non-empty tokens separated by <c>.</c>, made of letters, digits and <c>-_:/@</c>,
/// at most <see cref="MaxLength"/> characters, e.g. <c>registry.lease.granted</c>.
/// A pattern is a topic whose tokens may also be <c>*</c> (exactly one token) or, as the last token only,
/// <c>&gt;</c> (one or more tokens): <c>registry.*.granted</c>, <c>registry.&gt;</c>.
/// </summary>
public static class Topic
{
    /// <summary>Longest topic or pattern accepted, in characters.</summary>
    public const int MaxLength = 255;

    /// <summary>True when <paramref name="topic"/> is a concrete topic (no wildcards).</summary>
    public static bool IsValid(string? topic) => IsWellFormed(topic, allowWildcards: false);

    /// <summary>True when <paramref name="pattern"/> is a valid subscription pattern.</summary>
    public static bool IsValidPattern(string? pattern) => IsWellFormed(pattern, allowWildcards: true);

    /// <summary>Throws <see cref="ArgumentException"/> with the reason when <paramref name="topic"/> is not a concrete topic.</summary>
    public static void EnsureValid(string topic)
    {
        if (!IsValid(topic))
            throw new ArgumentException(
                $"'{topic}' is not a valid topic: use dot-separated tokens of letters, digits and -_:/@, no wildcards, at most {MaxLength} characters.",
                nameof(topic));
    }

    /// <summary>
    /// The literal prefix of a pattern, up to its first wildcard: what a prefix-filtering transport
    /// (ZeroMQ SUB) can subscribe to before the exact match runs.
    /// </summary>
    public static string LiteralPrefix(string pattern)
    {
        var star = pattern.IndexOf('*');
        var tail = pattern.IndexOf('>');
        var cut = (star, tail) switch
        {
            (< 0, < 0) => -1,
            (< 0, _) => tail,
            (_, < 0) => star,
            _ => Math.Min(star, tail),
        };
        return cut < 0 ? pattern : pattern[..cut];
    }

    private static bool IsWellFormed(string? text, bool allowWildcards)
    {
        if (string.IsNullOrEmpty(text) || text.Length > MaxLength) return false;
        var tokenStart = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            if (i < text.Length && text[i] != '.') continue;
            var token = text.AsSpan(tokenStart, i - tokenStart);
            if (token.IsEmpty) return false;
            if (token is "*" || token is ">")
            {
                if (!allowWildcards) return false;
                if (token is ">" && i != text.Length) return false;
            }
            else
            {
                foreach (var c in token)
                    if (!IsTokenChar(c)) return false;
            }
            tokenStart = i + 1;
        }
        return true;
    }

    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or ':' or '/' or '@';
}
