using System.Collections.Frozen;
using System.Text;

namespace Onex.Transports.Zmq;

/// <summary>
/// The subscriptions worth keeping on a PUB endpoint whose topics are a known, closed set: every prefix of every topic
/// (the empty prefix included). Any other subscription can never match a message, so dropping it changes nothing for
/// its subscriber, and what one peer can make the socket hold is at most <see cref="Count"/> entries, however many
/// subscribe messages it sends.
/// </summary>
internal sealed class TopicPrefixes
{
    // Latin-1 maps bytes to chars one to one, so a prefix with non-ASCII bytes never equals an ASCII topic prefix.
    private readonly FrozenSet<string> _prefixes;

    public TopicPrefixes(IEnumerable<string> topics)
    {
        var prefixes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var topic in topics)
        {
            var bytes = Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(topic));
            for (var length = 0; length <= bytes.Length; length++) prefixes.Add(bytes[..length]);
            LongestBytes = Math.Max(LongestBytes, bytes.Length);
        }
        _prefixes = prefixes.ToFrozenSet(StringComparer.Ordinal);
        TotalBytes = _prefixes.Sum(p => (long)p.Length);
    }

    /// <summary>How many distinct prefixes there are: the most subscriptions one peer can hold.</summary>
    public int Count => _prefixes.Count;

    /// <summary>The bytes of all prefixes together: the most subscription bytes one peer can hold.</summary>
    public long TotalBytes { get; }

    /// <summary>The longest topic in bytes.</summary>
    public int LongestBytes { get; }

    /// <summary>True when <paramref name="prefix"/> is a prefix of some topic (so it can match a message).</summary>
    public bool Contains(ReadOnlySpan<byte> prefix) =>
        prefix.Length <= LongestBytes && _prefixes.Contains(Encoding.Latin1.GetString(prefix));
}
