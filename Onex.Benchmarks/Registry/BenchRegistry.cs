using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;

namespace Onex.Benchmarks.Registry;

/// <summary>The in-process registry node the suites measure, on OS-chosen loopback endpoints.</summary>
internal static class BenchRegistry
{
    /// <summary>
    /// Ports the benchmarks lease: below the default pool (20000-29999) that test runs on this machine lease from,
    /// so a benchmark's free checks never race a test's bind.
    /// </summary>
    public static readonly PortRange Pool = new(10000, 19999);

    /// <summary>
    /// Default options except: loopback endpoints on port 0, the pool above, and no quarantine. A released port
    /// still goes through quarantine to the back of the free queue, only without resting there: with the default
    /// 30 s rest a 10,000-port pool sustains about 330 lease-release pairs per second, so no throughput run could
    /// last more than a fraction of a second. Every grant still runs the full free check.
    /// </summary>
    public static RegistryNodeOptions Options { get; } = RegistryNodeOptions.Default with
    {
        Endpoint = "tcp://127.0.0.1:0",
        PubEndpoint = "tcp://127.0.0.1:0",
        NodeId = "bench-registry",
        Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
        Leases = LeaseOptions.Default with { PortRange = Pool, Quarantine = TimeSpan.Zero },
    };

    /// <summary>
    /// <see cref="Options"/> without checks ahead of demand (<see cref="LeaseOptions.VerifiedPortFreshness"/> zero):
    /// every grant checks its port inline on the registry thread, as before the verifier existed.
    /// </summary>
    public static RegistryNodeOptions InlineCheckOptions { get; } = Options with
    {
        Leases = Options.Leases with { VerifiedPortFreshness = TimeSpan.Zero },
    };

    public static RegistryNodeHost Start(RegistryNodeOptions? options = null) =>
        RegistryNodeHost.StartAsync(options ?? Options).GetAwaiter().GetResult();
}
