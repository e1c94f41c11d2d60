namespace Onex.RegistryNode.Tools;

/// <summary>
/// The parsed input and output schemas of the most recently used contracts, by fingerprint, bounded by bytes.
/// A parsed NJsonSchema graph costs tens of times its JSON text (36 to 75 times measured), so a bound by count
/// let a few large schemas take gigabytes; each entry is charged <see cref="BoundedSchema.EstimatedBytes"/> of
/// both schemas, and the least recently used are evicted beyond <c>maxBytes</c>. A contract whose schemas were
/// evicted (or that alone exceeds the bound and is never kept) is parsed again from its record on its next
/// validation. Owned by the registry thread, so no locking.
/// </summary>
internal sealed class ParsedSchemaCache(long maxBytes)
{
    private sealed record Held(string Fingerprint, BoundedSchema Input, BoundedSchema Output)
    {
        public long Bytes => Input.EstimatedBytes + Output.EstimatedBytes;
    }

    private readonly Dictionary<string, LinkedListNode<Held>> _byFingerprint = new(StringComparer.Ordinal);
    private readonly LinkedList<Held> _recency = new();

    /// <summary>How many contracts' schemas are held.</summary>
    public int Count => _byFingerprint.Count;

    /// <summary>The estimated bytes of the schemas held (never above the bound).</summary>
    public long Bytes { get; private set; }

    /// <summary>The bound on <see cref="Bytes"/>.</summary>
    public long MaxBytes => maxBytes;

    /// <summary>Keeps the schemas of <paramref name="fingerprint"/> as the most recently used.</summary>
    public void Put(string fingerprint, BoundedSchema input, BoundedSchema output)
    {
        if (_byFingerprint.Remove(fingerprint, out var old))
        {
            _recency.Remove(old);
            Bytes -= old.Value.Bytes;
        }
        var held = new Held(fingerprint, input, output);
        if (held.Bytes > maxBytes) return;
        _byFingerprint[fingerprint] = _recency.AddFirst(held);
        Bytes += held.Bytes;
        while (Bytes > maxBytes)
        {
            var last = _recency.Last!.Value;
            _byFingerprint.Remove(last.Fingerprint);
            _recency.RemoveLast();
            Bytes -= last.Bytes;
        }
    }

    /// <summary>The schemas of <paramref name="fingerprint"/>, parsed with <paramref name="parse"/> when not held.</summary>
    public (BoundedSchema Input, BoundedSchema Output) Get(string fingerprint, Func<(BoundedSchema Input, BoundedSchema Output)> parse)
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
