namespace Onex.RegistryNode.Tenants;

/// <summary>
/// Tenants as namespaces (PROTOCOL.md section 16.3): node ids, bus names and tool <c>name@version</c> are unique per
/// tenant. Inside the registry an entry is keyed by <see cref="Key"/>: the bare name in the tenant <c>default</c> (so
/// a registry without an auth file, and its durable store, keep exactly the keys they always had), and
/// <c>tenant</c> + U+001F + name in any other tenant. Names never hold control characters, so the keys of two
/// tenants never collide.
/// </summary>
internal static class TenantNames
{
    /// <summary>The tenant of everything on a registry without an auth file; on the wire a null <c>tenant</c>.</summary>
    public const string Default = "default";

    /// <summary>The separator of a tenant's keys: a control character, which no node id, bus or tool name may hold.</summary>
    public const char Separator = '\u001F';

    /// <summary>The tenant a record's <c>tenant</c> field names (null: <see cref="Default"/>).</summary>
    public static string Of(string? tenant) => tenant ?? Default;

    /// <summary>The value of a record's <c>tenant</c> field for <paramref name="tenant"/> (null for <see cref="Default"/>).</summary>
    public static string? Field(string tenant) => tenant == Default ? null : tenant;

    /// <summary>The registry's key of <paramref name="name"/> in <paramref name="tenant"/>.</summary>
    public static string Key(string tenant, string name) => tenant == Default ? name : string.Concat(tenant, Separator.ToString(), name);
}
