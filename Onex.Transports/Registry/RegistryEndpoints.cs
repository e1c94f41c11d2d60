namespace Onex.Transports.Registry;

/// <summary>Where a registry node listens by default, and the environment variables that override it.</summary>
public static class RegistryEndpoints
{
    /// <summary>The registry's request (ROUTER) endpoint when nothing else is configured.</summary>
    public const string DefaultRouter = "tcp://127.0.0.1:5750";

    /// <summary>The registry's change broadcast (PUB) endpoint when nothing else is configured.</summary>
    public const string DefaultPub = "tcp://127.0.0.1:5751";

    /// <summary>Environment variable naming the request endpoint.</summary>
    public const string RouterVariable = "ONEX_REGISTRY_ENDPOINT";

    /// <summary>Environment variable naming the broadcast endpoint.</summary>
    public const string PubVariable = "ONEX_REGISTRY_PUB_ENDPOINT";

    /// <summary>
    /// Environment variable holding the registry's CURVE public key (Z85, 40 characters), for a registry that encrypts
    /// its endpoints (docs/ENCRYPTION.md). Unset: the client does not encrypt.
    /// </summary>
    public const string ServerKeyVariable = "ONEX_REGISTRY_SERVER_KEY";

    /// <summary>
    /// The registry's CURVE public key: <paramref name="configured"/>, else <see cref="ServerKeyVariable"/>, else null (no
    /// encryption). Throws <see cref="FormatException"/>, naming where the key came from, when it is not a Z85 key.
    /// </summary>
    public static string? ResolveServerKey(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return Security.CurveKeyPair.CheckPublicKey(configured, "RegistryClientOptions.ServerKey");
        var fromEnvironment = Environment.GetEnvironmentVariable(ServerKeyVariable);
        return string.IsNullOrWhiteSpace(fromEnvironment) ? null : Security.CurveKeyPair.CheckPublicKey(fromEnvironment, ServerKeyVariable);
    }

    /// <summary>The request endpoint: <paramref name="configured"/>, else <see cref="RouterVariable"/>, else <see cref="DefaultRouter"/>.</summary>
    public static string ResolveRouter(string? configured) => Resolve(configured, RouterVariable, DefaultRouter);

    /// <summary>The broadcast endpoint: <paramref name="configured"/>, else <see cref="PubVariable"/>, else <see cref="DefaultPub"/>.</summary>
    public static string ResolvePub(string? configured) => Resolve(configured, PubVariable, DefaultPub);

    private static string Resolve(string? configured, string variable, string fallback)
    {
        if (!string.IsNullOrWhiteSpace(configured)) return configured.Trim();
        var fromEnvironment = Environment.GetEnvironmentVariable(variable);
        return string.IsNullOrWhiteSpace(fromEnvironment) ? fallback : fromEnvironment.Trim();
    }
}
