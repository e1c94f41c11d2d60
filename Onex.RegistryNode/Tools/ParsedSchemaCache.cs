using NJsonSchema;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// The parsed input and output schemas of the most recently used contracts, by fingerprint. Parsed NJsonSchema
/// objects take tens of kilobytes each, so keeping every registered contract's would dominate the registry's memory;
/// a contract whose schemas were evicted is parsed again from its record on its next validation. Owned by the
/// registry thread, so no locking.
/// </summary>
internal sealed class ParsedSchemaCache(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<(string Fingerprint, JsonSchema Input, JsonSchema Output)>> _byFingerprint = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Fingerprint, JsonSchema Input, JsonSchema Output)> _recency = new();

    /// <summary>How many contracts' schemas are held.</summary>
    public int Count => _byFingerprint.Count;

    /// <summary>Keeps the schemas of <paramref name="fingerprint"/> as the most recently used.</summary>
    public void Put(string fingerprint, JsonSchema input, JsonSchema output)
    {
        if (capacity <= 0) return;
        if (_byFingerprint.Remove(fingerprint, out var old)) _recency.Remove(old);
        _byFingerprint[fingerprint] = _recency.AddFirst((fingerprint, input, output));
        while (_byFingerprint.Count > capacity)
        {
            _byFingerprint.Remove(_recency.Last!.Value.Fingerprint);
            _recency.RemoveLast();
        }
    }

    /// <summary>The schemas of <paramref name="fingerprint"/>, parsed with <paramref name="parse"/> when not held.</summary>
    public (JsonSchema Input, JsonSchema Output) Get(string fingerprint, Func<(JsonSchema Input, JsonSchema Output)> parse)
    {
        if (_byFingerprint.TryGetValue(fingerprint, out var node))
        {
            _recency.Remove(node);
            _recency.AddFirst(node);
            return (node.Value.Input, node.Value.Output);
        }
        var parsed = parse();
        Put(fingerprint, parsed.Input, parsed.Output);
        return parsed;
    }
}
