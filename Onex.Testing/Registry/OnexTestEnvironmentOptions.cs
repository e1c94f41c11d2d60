using Onex.RegistryNode.Leases;

namespace Onex.Testing.Registry;

/// <summary>
/// How the test process reaches its registry. Set once with <see cref="OnexTestEnvironment.Configure"/>, before the
/// first port is leased; change with <c>with</c>.
/// </summary>
public sealed record OnexTestEnvironmentOptions
{
    /// <summary>The defaults below.</summary>
    public static OnexTestEnvironmentOptions Default { get; } = new();

    /// <summary>
    /// The ports the in-process registry leases from (not used with a shared registry, which has its own pool).
    /// Keep it apart from <see cref="OnexTestEnvironment.PrivatePortRange"/>, where registries that tests start
    /// themselves lease from.
    /// </summary>
    public PortRange PortRange { get; init; } = OnexTestEnvironment.DefaultPortRange;

    /// <summary>
    /// How many ports of <see cref="PortRange"/> one in-process registry uses: a window at a random offset, so two
    /// test processes that were not given a shared registry rarely hand out the same ports. Null: the whole range.
    /// </summary>
    public int? PoolWindow { get; init; } = 1000;

    /// <summary>
    /// TTL asked for leases. It is also how long a port stays taken when the test process is killed and cannot
    /// release it. Null: the registry's default (30 s).
    /// </summary>
    public TimeSpan? LeaseTtl { get; init; }

    /// <summary>How long one attempt of a registry request waits for its reply.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the cleanup after one test may take in all before it gives up (and says so on the test output).</summary>
    public TimeSpan CleanupTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
