using System.Text.Json;
using System.Text.Json.Serialization;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// The auth file a registry node reads with <c>--auth-file</c> (<c>contracts/files/AuthFile.schema.json</c>): tenants, each
/// with its tokens (a name, a role and the token's hash, never the token) and optional quotas.
/// </summary>
public sealed record AuthFile
{
    /// <summary>The file format's version: 1.</summary>
    [JsonPropertyName("version")] public int Version { get; init; } = 1;

    /// <summary>The tenants.</summary>
    [JsonPropertyName("tenants")] public List<AuthTenant> Tenants { get; init; } = [];

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };
}

/// <summary>One tenant: a namespace of nodes, buses, tools and leases, with its tokens and quotas.</summary>
public sealed record AuthTenant
{
    /// <summary>The tenant's name: 1 to 64 characters from <c>A-Z a-z 0-9 . _ -</c>.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Limits on what the tenant may hold; null: unlimited.</summary>
    [JsonPropertyName("quotas")] public TenantQuotas? Quotas { get; init; }

    /// <summary>The tenant's tokens.</summary>
    [JsonPropertyName("tokens")] public List<AuthToken> Tokens { get; init; } = [];
}

/// <summary>One token: who it is (<see cref="Name"/>), what it may do (<see cref="Role"/>), and its hash.</summary>
public sealed record AuthToken
{
    /// <summary>A name for people and logs (the token itself is never logged): unique within the tenant.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary><c>reader</c>, <c>node</c> or <c>admin</c> (see <see cref="AuthRoles"/>).</summary>
    [JsonPropertyName("role")] public string Role { get; init; } = "";

    /// <summary><c>sha256:</c> + 64 hex digits: the SHA-256 of the token's UTF-8 bytes (<see cref="AccessTokens.Hash"/>).</summary>
    [JsonPropertyName("hash")] public string Hash { get; init; } = "";
}

/// <summary>Per-tenant limits; an absent limit is unlimited.</summary>
public sealed record TenantQuotas
{
    /// <summary>Most live port leases the tenant's nodes may hold at once.</summary>
    [JsonPropertyName("leases")] public int? Leases { get; init; }

    /// <summary>Most nodes the tenant may have announced at once.</summary>
    [JsonPropertyName("nodes")] public int? Nodes { get; init; }

    /// <summary>Most buses the tenant may have registered at once.</summary>
    [JsonPropertyName("buses")] public int? Buses { get; init; }

    /// <summary>Most tool contracts the tenant may have registered at once.</summary>
    [JsonPropertyName("tools")] public int? Tools { get; init; }

    /// <summary>Most bytes (UTF-8) of input and output schema text over all of the tenant's tool contracts.</summary>
    [JsonPropertyName("schemaBytes")] public long? SchemaBytes { get; init; }

    /// <summary>Most requests per second the tenant's tokens may send together (a token bucket of one second's burst).</summary>
    [JsonPropertyName("requestsPerSecond")] public int? RequestsPerSecond { get; init; }
}

/// <summary>The roles a token can have.</summary>
public static class AuthRoles
{
    /// <summary>Introspection, snapshots, watching and payload validation, within the tenant.</summary>
    public const string Reader = "reader";

    /// <summary>Everything a node does (leases, announcements, buses, tools), within the tenant; and what a reader does.</summary>
    public const string Node = "node";

    /// <summary>Everything, in every tenant.</summary>
    public const string Admin = "admin";

    /// <summary>All roles, in order of power.</summary>
    public static readonly IReadOnlyList<string> All = [Reader, Node, Admin];
}
