namespace Onex.RegistryNode.Server;

/// <summary>
/// Token buckets by key on one clock: a bucket refills at its rate per second and holds one second's worth (the
/// burst). Used on the registry thread only, so it takes no lock.
/// </summary>
internal sealed class TokenBuckets(TimeProvider time)
{
    private readonly Dictionary<string, (double Tokens, long At)> _buckets = new(StringComparer.Ordinal);

    /// <summary>Keys holding a bucket.</summary>
    public int Count => _buckets.Count;

    /// <summary>Takes one token from <paramref name="key"/>'s bucket (refilling at <paramref name="perSecond"/>); false when it holds less than one.</summary>
    public bool TryTake(string key, int perSecond)
    {
        var now = time.GetTimestamp();
        var (tokens, at) = _buckets.TryGetValue(key, out var bucket) ? bucket : (perSecond, now);
        tokens = Math.Min(perSecond, tokens + time.GetElapsedTime(at, now).TotalSeconds * perSecond);
        if (tokens < 1)
        {
            _buckets[key] = (tokens, now);
            return false;
        }
        _buckets[key] = (tokens - 1, now);
        return true;
    }

    /// <summary>Forgets <paramref name="key"/>'s bucket (it starts full when used again).</summary>
    public void Remove(string key) => _buckets.Remove(key);
}
