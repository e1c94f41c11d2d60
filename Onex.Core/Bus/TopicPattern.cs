namespace Onex.Bus;

/// <summary>
/// A parsed subscription pattern (syntax in <see cref="Topic"/>). Matching allocates nothing.
/// </summary>
public sealed class TopicPattern
{
    private readonly string[] _tokens;
    private readonly bool _tailWildcard;

    private TopicPattern(string pattern)
    {
        Pattern = pattern;
        var tokens = pattern.Split('.');
        _tailWildcard = tokens[^1] == ">";
        _tokens = _tailWildcard ? tokens[..^1] : tokens;
        IsLiteral = !_tailWildcard && !tokens.Contains("*");
    }

    /// <summary>The pattern text.</summary>
    public string Pattern { get; }

    /// <summary>True when the pattern has no wildcards and matches exactly one topic.</summary>
    public bool IsLiteral { get; }

    /// <summary>Parses <paramref name="pattern"/>; throws <see cref="ArgumentException"/> saying why when it is invalid.</summary>
    public static TopicPattern Parse(string pattern)
    {
        if (!Topic.IsValidPattern(pattern))
            throw new ArgumentException(
                $"'{pattern}' is not a valid topic pattern: dot-separated tokens, '*' for one token, '>' as the last token for one or more.",
                nameof(pattern));
        return new TopicPattern(pattern);
    }

    /// <summary>True when the concrete <paramref name="topic"/> matches this pattern.</summary>
    public bool Matches(string topic)
    {
        if (IsLiteral) return string.Equals(topic, Pattern, StringComparison.Ordinal);
        var rest = topic.AsSpan();
        var topicLeft = true;
        for (var i = 0; i < _tokens.Length; i++)
        {
            if (!topicLeft) return false;
            var dot = rest.IndexOf('.');
            var token = dot < 0 ? rest : rest[..dot];
            if (_tokens[i] != "*" && !token.SequenceEqual(_tokens[i])) return false;
            topicLeft = dot >= 0;
            rest = topicLeft ? rest[(dot + 1)..] : ReadOnlySpan<char>.Empty;
        }
        // With '>' at least one more topic token must remain; without it none may.
        return _tailWildcard ? topicLeft : !topicLeft;
    }

    /// <inheritdoc/>
    public override string ToString() => Pattern;
}
