using Onex.Protocol;

namespace Onex.RegistryNode.Cluster;

/// <summary>The kinds of entry in the cluster bucket (the third token of a key).</summary>
internal static class ClusterKinds
{
    public const string Node = "node";
    public const string Bus = "bus";
    public const string Tool = "tool";
    public const string Host = "host";
}

/// <summary>
/// The key layout of the cluster bucket (docs/CLUSTER.md): <c>TENANT.HOST.KIND.NAME</c> for a host's entries of a
/// tenant (<c>KIND</c> = <c>node</c>, <c>bus</c>, <c>tool</c>; a tool's <c>NAME</c> is <c>name@version</c>), the host's
/// heartbeat <c>default.HOST.host.heartbeat</c> (host-wide, under the tenant token <c>default</c>), and cluster-wide
/// claims <c>TENANT.=claim.KIND.NAME</c> (who owns a bus name or a tool name and version of a tenant in the whole
/// cluster). NATS keys allow only <c>A-Z a-z 0-9 - _ = / .</c>, and <c>.</c> separates tokens, so every token is
/// escaped with <see cref="NatsToken"/>: <c>A-Z a-z 0-9 -</c> stay, every other UTF-8 byte becomes <c>_XX</c>
/// (upper-case hex). Escaping never writes <c>=</c>, so the <c>=claim</c> token cannot collide with a host name.
/// </summary>
internal static class ClusterKeys
{
    public const string ClaimToken = "=claim";
    public const string HeartbeatName = "heartbeat";

    // Every token is escaped by the one helper the request subjects use too.
    private static string Escape(string text) => NatsToken.Escape(text);

    private static string? Unescape(string token) => NatsToken.Unescape(token);

    /// <summary>The tenant token of the host-wide heartbeat key (the layout's only key that belongs to no tenant).</summary>
    public const string HeartbeatTenant = "default";

    public static string Entry(string tenant, string host, string kind, string name) => $"{Escape(tenant)}.{Escape(host)}.{kind}.{Escape(name)}";

    public static string Heartbeat(string host) => Entry(HeartbeatTenant, host, ClusterKinds.Host, HeartbeatName);

    /// <summary>Every key of <paramref name="host"/>, in every tenant (its heartbeat included).</summary>
    public static string HostPrefix(string host) => $"*.{Escape(host)}.>";

    /// <summary>Every key of the bucket.</summary>
    public const string All = ">";

    public static string Claim(string tenant, string kind, string name) => $"{Escape(tenant)}.{ClaimToken}.{kind}.{Escape(name)}";

    /// <summary>Every claim, of every tenant.</summary>
    public const string ClaimPrefix = "*." + ClaimToken + ".>";

    /// <summary>
    /// A parsed key: a claim (host null) or a host's entry, with the tenant its first token names (see
    /// <see cref="ClusterCatalog"/> for entries of the layout before tenants); null for a key this layout does not write.
    /// </summary>
    public static (string Tenant, string? Host, string Kind, string Name)? Parse(string key)
    {
        var tokens = key.Split('.');
        if (tokens.Length != 4) return null;
        var kind = tokens[2];
        if (kind is not (ClusterKinds.Node or ClusterKinds.Bus or ClusterKinds.Tool or ClusterKinds.Host)) return null;
        if (Unescape(tokens[0]) is not { } tenant || Unescape(tokens[3]) is not { } name) return null;
        if (tokens[1] == ClaimToken) return (tenant, null, kind, name);
        return Unescape(tokens[1]) is { } host ? (tenant, host, kind, name) : null;
    }
}
