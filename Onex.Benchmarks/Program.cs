using BenchmarkDotNet.Running;
using Onex.Benchmarks.Registry;

namespace Onex.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project Onex.Benchmarks -- --filter '*'</c> for the BenchmarkDotNet suites,
/// or one of the console measurements (not suites): <c>-- registry-memory</c> (the registry's memory and restart probe),
/// <c>-- registry-vs-etcd</c> (lease pairs against a node and etcd in child processes), <c>-- registry-curve</c>
/// (CURVE encryption on and off), <c>-- registry-auth</c> (access control on and off), <c>-- registry-metrics</c>
/// (metrics endpoint off and scraped by Prometheus), <c>-- cluster-propagation</c>, and <c>-- fuzz --iterations N</c>
/// (the registry fuzzer, results/RegistryFuzz.md).
/// </summary>
public static class BenchmarkProgram
{
    public static int Main(string[] args)
    {
        if (args is [RegistryMemoryProbe.Command, ..])
        {
            try
            {
                return RegistryMemoryProbe.Run(args[1..]);
            }
            catch (RegistryNodeStartException ex)
            {
                // A node that refuses to start (a --compare-node build that cannot read this build's store) is a
                // finding to report, not a crash.
                Console.Error.WriteLine($"{RegistryMemoryProbe.Command}: {ex.Message}");
                return 1;
            }
        }
        if (args is [RegistryVsEtcd.Command, ..]) return RegistryVsEtcd.Run(args[1..]);
        if (args is [RegistryCurve.Command, ..]) return RegistryCurve.Run(args[1..]);
        if (args is [RegistryAuthBench.Command, ..]) return RegistryAuthBench.Run(args[1..]);
        if (args is [RegistryMetricsBench.Command, ..]) return RegistryMetricsBench.Run(args[1..]);
        if (args is [ClusterPropagation.Command, ..]) return ClusterPropagation.Run(args[1..]);
        if (args is [Fuzz.FuzzCommand.Command, ..]) return Fuzz.FuzzCommand.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(args);
        return 0;
    }
}
