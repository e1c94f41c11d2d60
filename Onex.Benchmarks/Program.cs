using BenchmarkDotNet.Running;
using Onex.Benchmarks.Registry;

namespace Onex.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project Onex.Benchmarks -- --filter '*'</c> for the BenchmarkDotNet suites,
/// or <c>-- registry-memory</c> for the registry's memory probe and <c>-- registry-vs-etcd</c> for lease pairs against a
/// node and etcd in child processes, <c>-- registry-curve</c> for lease pairs with CURVE encryption on and off (console
/// measurements, not suites).
/// node and etcd in child processes (console measurements, not suites), and <c>-- fuzz --iterations N</c> for the
/// registry fuzzer (results/RegistryFuzz.md).
/// </summary>
public static class BenchmarkProgram
{
    public static int Main(string[] args)
    {
        if (args is [RegistryMemoryProbe.Command, ..]) return RegistryMemoryProbe.Run(args[1..]);
        if (args is [RegistryVsEtcd.Command, ..]) return RegistryVsEtcd.Run(args[1..]);
        if (args is [RegistryCurve.Command, ..]) return RegistryCurve.Run(args[1..]);
        if (args is [RegistryAuthBench.Command, ..]) return RegistryAuthBench.Run(args[1..]);
        if (args is [ClusterPropagation.Command, ..]) return ClusterPropagation.Run(args[1..]);
        if (args is [Fuzz.FuzzCommand.Command, ..]) return Fuzz.FuzzCommand.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(args);
        return 0;
    }
}
