using System.Globalization;
using System.Text;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Hosting;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// <c>registry-auth [--seconds S] [--rounds R] [--in-flight N]</c>: lease-then-release pairs per second against an
/// in-process node without an auth file and one with (every request's token hashed and compared with every stored
/// hash, tenant checks, lease quota counted, request-rate bucket), in alternating rounds of one run, over the raw
/// protocol (<see cref="LeasePairLoops.Raw"/>). Writes <c>results/RegistryAuth.md</c>. Target (issue 14): on at least
/// 90% of off.
/// </summary>
internal static class RegistryAuthBench
{
    public const string Command = "registry-auth";

    public static int Run(string[] args)
    {
        int seconds, rounds, inFlight;
        try
        {
            var options = BenchArguments.Parse(args, "--seconds", "--rounds", "--in-flight");
            seconds = options.Positive("--seconds", 5);
            rounds = options.Positive("--rounds", 5);
            inFlight = options.Positive("--in-flight", 64);
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"{Command}: {ex.Message}");
            Console.Error.WriteLine($"usage: {Command} [--seconds S] [--rounds R] [--in-flight N]");
            return 2;
        }
        var directory = Directory.CreateTempSubdirectory("onex-auth-bench-");
        try
        {
            var file = Path.Combine(directory.FullName, "auth.json");
            // Ten tokens in five tenants, so the constant-time scan compares against more than one hash.
            string token = "";
            for (var t = 0; t < 5; t++)
            for (var k = 0; k < 2; k++)
            {
                var added = AuthFileEditor.AddToken(file, $"tenant-{t}", AuthRoles.Node, $"node-{k}");
                if (t == 4 && k == 1) token = added;
            }
            var configured = AuthConfiguration.Load(file).File;
            var limits = new TenantQuotas { Leases = 100_000, Nodes = 100, RequestsPerSecond = 1_000_000_000 };
            File.WriteAllText(file, System.Text.Json.JsonSerializer.Serialize(
                configured with { Tenants = configured.Tenants.Select(x => x with { Quotas = limits }).ToList() }, AuthFile.Json));

            var off = new List<double>();
            var on = new List<double>();
            Console.WriteLine($"registry-auth: {rounds} round(s) of {seconds} s each, taking turns at going first, {inFlight} pairs in flight");
            // One unmeasured round of each first: the process's first node pays for JIT and type loading, which made
            // the first "off" round a third of the others.
            Measure(BenchRegistry.Options, null, inFlight, 3);
            Measure(BenchRegistry.Options with { AuthFile = file }, token, inFlight, 3);
            for (var round = 1; round <= rounds; round++)
            {
                double Off() => Measure(BenchRegistry.Options, null, inFlight, seconds);
                double On() => Measure(BenchRegistry.Options with { AuthFile = file }, token, inFlight, seconds);
                if (round % 2 == 1)
                {
                    off.Add(Off());
                    on.Add(On());
                }
                else
                {
                    on.Add(On());
                    off.Add(Off());
                }
                Console.WriteLine($"round {round}: off {off[^1]:N0}/s, on {on[^1]:N0}/s");
            }
            var report = Report(off, on, seconds, inFlight);
            File.WriteAllText(ResultsPath.For("RegistryAuth.md"), report);
            Console.WriteLine(report);
            return 0;
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static double Measure(RegistryNodeOptions options, string? token, int inFlight, int seconds)
    {
        var node = BenchRegistry.Start(options);
        try
        {
            using var dealer = new BenchDealer(node.RouterEndpoint) { Token = token };
            dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "bench-node" });
            LeasePairLoops.Raw(dealer, "bench-node", inFlight, TimeSpan.FromSeconds(1), long.MaxValue); // warm-up
            return LeasePairLoops.Raw(dealer, "bench-node", inFlight, TimeSpan.FromSeconds(seconds), long.MaxValue).PerSecond;
        }
        finally
        {
            node.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static string Report(List<double> off, List<double> on, int seconds, int inFlight)
    {
        static double Median(List<double> values)
        {
            var sorted = values.Order().ToList();
            return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
        }
        var ic = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine("# Lease + release pairs per second, access control off and on");
        text.AppendLine();
        text.AppendLine(ic, $"`dotnet run -c Release --project Onex.Benchmarks -- {Command} --seconds {seconds} --rounds {off.Count} --in-flight {inFlight}`");
        text.AppendLine(ic, $"on {Environment.ProcessorCount} core(s), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. One in-process node (memory store, quarantine 0) per round,");
        text.AppendLine("one raw DEALER pipelining pairs, after one unmeasured round of each; rounds alternate which goes first, so machine load hits both. \"On\": an auth file of ten tokens in");
        text.AppendLine("five tenants with quotas (leases, nodes, requests/s), every request's token hashed (SHA-256) and compared with all ten.");
        text.AppendLine();
        text.AppendLine("| round | off (pairs/s) | on (pairs/s) | on / off |");
        text.AppendLine("| --- | ---: | ---: | ---: |");
        for (var i = 0; i < off.Count; i++)
            text.AppendLine(ic, $"| {i + 1} | {off[i]:N0} | {on[i]:N0} | {on[i] / off[i]:P0} |");
        var medianOff = Median(off);
        var medianOn = Median(on);
        text.AppendLine(ic, $"| **median** | **{medianOff:N0}** | **{medianOn:N0}** | **{medianOn / medianOff:P0}** |");
        text.AppendLine();
        text.AppendLine(ic, $"Target (issue 14): on at least 90% of off: {(medianOn / medianOff >= 0.9 ? "met" : "missed")}.");
        // A loaded machine makes the ratio meaningless; say how loaded it was.
        if (File.Exists("/proc/loadavg"))
            text.AppendLine(ic, $"Load average at the end (1, 5, 15 min): {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}.");
        return text.ToString();
    }
}
