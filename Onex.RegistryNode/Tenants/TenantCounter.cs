namespace Onex.RegistryNode.Tenants;

/// <summary>
/// How much each tenant holds of one kind of entry (leases, nodes, buses, tools, schema bytes), kept up to date by
/// the entry's owner as it adds and removes, so a quota check reads a number instead of scanning the entries.
/// Owned by the registry thread.
/// </summary>
internal sealed class TenantCounter
{
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);

    /// <summary>What <paramref name="tenant"/> holds (0 when nothing).</summary>
    public long Of(string tenant) => _counts.GetValueOrDefault(tenant);

    /// <summary>The tenants that hold something.</summary>
    public IEnumerable<string> Tenants => _counts.Keys;

    /// <summary>Adds <paramref name="delta"/> (negative to subtract) to what <paramref name="tenant"/> holds.</summary>
    public void Add(string tenant, long delta)
    {
        if (delta == 0) return;
        var next = _counts.GetValueOrDefault(tenant) + delta;
        if (next == 0) _counts.Remove(tenant); // a tenant that holds nothing is not kept
        else _counts[tenant] = next;
    }

    /// <summary>Forgets every count (the entries behind them were thrown away).</summary>
    public void Clear() => _counts.Clear();
}
