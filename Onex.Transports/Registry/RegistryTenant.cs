namespace Onex.Transports.Registry;

/// <summary>
/// Which tenant a client's requests act in (PROTOCOL.md 16.3): sent as the envelope key <c>tenant</c>. Only an admin
/// token may name a tenant other than its own; without one, requests act in the token's tenant.
/// </summary>
public static class RegistryTenant
{
    /// <summary>Environment variable naming the tenant.</summary>
    public const string Variable = "ONEX_TENANT";

    /// <summary>The tenant: <paramref name="configured"/>, else <see cref="Variable"/>, else null (no <c>tenant</c> key is sent).</summary>
    public static string? Resolve(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured)) return configured.Trim();
        var fromEnvironment = Environment.GetEnvironmentVariable(Variable);
        return string.IsNullOrWhiteSpace(fromEnvironment) ? null : fromEnvironment.Trim();
    }
}
