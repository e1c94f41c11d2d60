namespace Onex.Transports.Registry;

/// <summary>Where a client's access token comes from (a registry with an auth file requires one; PROTOCOL.md section 16).</summary>
public static class RegistryToken
{
    /// <summary>Environment variable holding the access token.</summary>
    public const string Variable = "ONEX_TOKEN";

    /// <summary>The token: <paramref name="configured"/>, else <see cref="Variable"/>, else null (no token is sent).</summary>
    public static string? Resolve(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured)) return configured.Trim();
        var fromEnvironment = Environment.GetEnvironmentVariable(Variable);
        return string.IsNullOrWhiteSpace(fromEnvironment) ? null : fromEnvironment.Trim();
    }
}
