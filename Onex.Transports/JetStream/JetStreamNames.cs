using System.Security.Cryptography;
using System.Text;
using Onex.Bus;

namespace Onex.Transports.JetStream;

/// <summary>
/// How a bus maps onto JetStream: bus <c>orders</c> is stream <c>ONEX_orders</c> holding subjects
/// <c>onex.orders.&gt;</c>; topic <c>a.b.c</c> is subject <c>onex.orders.a.b.c</c>, and a pattern maps token for
/// token because Onex topic syntax is NATS subject syntax (<c>*</c> one token, <c>&gt;</c> one or more).
/// </summary>
internal sealed class JetStreamNames
{
    private const int MaxPlainTokenLength = 64;

    public JetStreamNames(string busName)
    {
        BusToken = SafeToken(busName);
        StreamName = "ONEX_" + BusToken;
        SubjectPrefix = "onex." + BusToken + ".";
        StreamSubject = SubjectPrefix + ">";
    }

    /// <summary>The bus name as one subject token and stream-name suffix.</summary>
    public string BusToken { get; }

    /// <summary>The stream that stores this bus's events.</summary>
    public string StreamName { get; }

    /// <summary><c>onex.&lt;bus&gt;.</c>, the prefix every subject of this bus starts with.</summary>
    public string SubjectPrefix { get; }

    /// <summary><c>onex.&lt;bus&gt;.&gt;</c>, the stream's one subject filter.</summary>
    public string StreamSubject { get; }

    /// <summary>The subject for a concrete topic, or for a pattern (wildcards pass through unchanged).</summary>
    public string SubjectFor(string topicOrPattern) => SubjectPrefix + topicOrPattern;

    /// <summary>True when <paramref name="subject"/> is exactly the subject of <paramref name="topic"/>.</summary>
    public bool IsSubjectOf(string subject, string topic) =>
        subject.Length == SubjectPrefix.Length + topic.Length
        && subject.StartsWith(SubjectPrefix, StringComparison.Ordinal)
        && subject.AsSpan(SubjectPrefix.Length).SequenceEqual(topic);

    /// <summary>The consumer name for a durable subscription name.</summary>
    public static string DurableConsumerName(string durableName) => SafeToken(durableName);

    /// <summary>A fresh name for an ephemeral consumer (named, so the create request can carry a wildcard filter).</summary>
    public static string EphemeralConsumerName() => "eph_" + Guid.NewGuid().ToString("N");

    /// <summary>
    /// A name usable as one subject token, a stream-name suffix and a consumer name: letters, digits, '-' and '_'
    /// pass through; anything else (dots, ':', '/', '@') becomes '_' and a hash of the original is appended, so
    /// two different names never share a stream or consumer ("a.b" and "a_b" stay apart).
    /// </summary>
    public static string SafeToken(string name)
    {
        var plain = name.Length <= MaxPlainTokenLength;
        foreach (var c in name)
            plain &= char.IsAsciiLetterOrDigit(c) || c is '-' or '_';
        if (plain) return name;

        var cleaned = new StringBuilder(Math.Min(name.Length, MaxPlainTokenLength - 9));
        foreach (var c in name.AsSpan(0, Math.Min(name.Length, MaxPlainTokenLength - 9)))
            cleaned.Append(char.IsAsciiLetterOrDigit(c) || c is '-' ? c : '_');
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(name));
        return cleaned.Append('_').Append(Convert.ToHexStringLower(hash, 0, 4)).ToString();
    }

    /// <summary>Throws <see cref="ArgumentException"/> when <paramref name="busName"/> cannot name a bus.</summary>
    public static void EnsureValidBusName(string? busName)
    {
        if (!Topic.IsValid(busName))
            throw new ArgumentException(
                $"'{busName}' is not a valid bus name: use letters, digits and -_:/@, optionally dot-separated, at most {Topic.MaxLength} characters.",
                nameof(busName));
    }
}
