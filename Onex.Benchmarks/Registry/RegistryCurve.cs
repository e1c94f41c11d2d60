using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Transports.Registry;
using Onex.Transports.Security;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// <c>registry-curve</c>: lease-then-release pairs per second against two registry nodes in child processes, one
/// encrypting its endpoints with CurveZMQ (<c>--curve-key-file</c>) and one plain, each raw (a pipelined DEALER, a CURVE
/// client for the encrypting node) and through <see cref="RegistryClient"/> (with <c>ServerKey</c>), with 1 and 64 pairs
/// in flight. Every measurement takes its turn in each round (order rotated), so load from elsewhere falls on both nodes
/// alike; the report gives medians, ranges and the ratio CURVE / plain (the target: at least 0.5). Loopback only, memory
/// store (so the cost measured is the encryption's, not the disk's). Writes <c>results/RegistryCurve.md</c>.
/// </summary>
internal static class RegistryCurve
{
    public const string Command = "registry-curve";

    private const string PortRange = "10000-19999";
    private const double Target = 0.5;

    private static readonly string[] NodeArguments = ["--port-range", PortRange, "--quarantine", "0s", "--log-level", "Warning", "--store", "memory"];

    private sealed record Settings(int Rounds, TimeSpan Duration, TimeSpan Warmup, long MaxPairs, int[] InFlight, string Output);

    private sealed class Cell(string mode, string side, int inFlight, Func<int, TimeSpan, long, Task<PairCount>> run, int serverPid)
    {
        public string Mode { get; } = mode;
        public string Side { get; } = side;
        public int InFlight { get; } = inFlight;
        public List<(PairCount Count, double ServerCpuUs)> Samples { get; } = [];
        public string Label => $"{Mode}/{Side}/{InFlight}";

        public async Task<(PairCount Count, double ServerCpuUs)> MeasureAsync(TimeSpan duration, long maxPairs)
        {
            var before = ProcStat.Cpu(serverPid);
            var count = await run(InFlight, duration, maxPairs).ConfigureAwait(false);
            var used = ProcStat.Cpu(serverPid) - before;
            return (count, count.Pairs == 0 ? double.NaN : used.TotalMicroseconds / count.Pairs);
        }
    }

    public static int Run(string[] args)
    {
        Settings settings;
        try
        {
            settings = Parse(args);
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"{Command}: {ex.Message}");
            Console.Error.WriteLine($"usage: {Command} [--rounds N] [--seconds S] [--warmup S] [--max-pairs N] [--in-flight 1,64] [--out FILE]");
            return 2;
        }
        if (!File.Exists(RegistryNodeProcess.Dll))
        {
            Console.Error.WriteLine($"{Command}: {RegistryNodeProcess.Dll} not found; build Onex.Benchmarks first.");
            return 1;
        }
        return RunAsync(settings).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(Settings settings)
    {
        var startedAt = DateTimeOffset.UtcNow;
        var loadBefore = ProcStat.LoadAverage();
        var cells = new List<Cell>();
        var disposables = new Stack<IDisposable>();
        var asyncDisposables = new Stack<IAsyncDisposable>();
        var keyDirectory = Directory.CreateTempSubdirectory("onex-bench-curve-");
        var keys = CurveKeyPair.Generate();
        var keyFile = Path.Combine(keyDirectory.FullName, "registry.key");
        CurveKeyFile.Write(keyFile, keys);
        var notes = new List<string>();
        try
        {
            foreach (var (mode, extra, serverKey) in new[] { ("off", Array.Empty<string>(), (string?)null), ("curve", ["--curve-key-file", keyFile], keys.PublicKey) })
            {
                var arguments = NodeArguments.Concat(extra).ToArray();
                Progress($"starting node '{mode}': dotnet onex-registry.dll {string.Join(' ', arguments)}");
                var node = RegistryNodeProcess.Start(arguments);
                disposables.Push(node);
                var dealer = new BenchDealer(node.RouterEndpoint, serverKey);
                disposables.Push(dealer);
                var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
                {
                    Endpoint = node.RouterEndpoint,
                    PubEndpoint = node.PubEndpoint,
                    ServerKey = serverKey,
                    NodeId = $"bench-client-{mode}",
                    NodeName = Command,
                }).ConfigureAwait(false);
                asyncDisposables.Push(client);
                var leaseOptions = new LeaseRequestOptions { Purpose = Command, RenewAutomatically = false };
                var nodeId = $"bench-raw-{mode}";
                foreach (var inFlight in settings.InFlight)
                {
                    cells.Add(new Cell(mode, "raw", inFlight, (n, d, m) => Task.FromResult(LeasePairLoops.Raw(dealer, nodeId, n, d, m)), node.Id));
                    cells.Add(new Cell(mode, "client", inFlight, (n, d, m) => LeasePairLoops.ClientAsync(client, leaseOptions, n, d, m), node.Id));
                }
            }

            foreach (var cell in cells)
            {
                var warm = await cell.MeasureAsync(settings.Warmup, settings.MaxPairs).ConfigureAwait(false);
                Progress($"warm-up {cell.Label}: {warm.Count.PerSecond:N0} pairs/s");
            }
            for (var round = 0; round < settings.Rounds; round++)
            {
                Progress($"round {round + 1}/{settings.Rounds} (load {ProcStat.LoadAverage()})");
                for (var i = 0; i < cells.Count; i++)
                {
                    var cell = cells[(i + round) % cells.Count];
                    var sample = await cell.MeasureAsync(settings.Duration, settings.MaxPairs).ConfigureAwait(false);
                    cell.Samples.Add(sample);
                    Progress($"  {cell.Label,-20} {sample.Count.PerSecond,10:N0} pairs/s (server CPU {sample.ServerCpuUs:F1} us/pair)");
                }
            }
        }
        finally
        {
            while (asyncDisposables.TryPop(out var d)) await d.DisposeAsync().ConfigureAwait(false);
            while (disposables.TryPop(out var d)) d.Dispose();
            keyDirectory.Delete(recursive: true);
        }

        var (report, met) = Report(settings, cells, notes, startedAt, loadBefore, ProcStat.LoadAverage());
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(settings.Output))!);
        File.WriteAllText(settings.Output, report);
        Console.Error.WriteLine(report);
        Progress($"report written to {settings.Output}");
        return met ? 0 : 1;
    }

    private static (string Report, bool Met) Report(Settings settings, List<Cell> cells, List<string> notes, DateTimeOffset startedAt, string loadBefore, string loadAfter)
    {
        var ic = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine("# Registry node with CURVE encryption on and off: lease + release pairs per second");
        text.AppendLine();
        text.AppendLine(ic, $"`dotnet run -c Release --project Onex.Benchmarks -- {Command}`, {startedAt:yyyy-MM-dd HH:mm} UTC: {settings.Rounds} rounds of " +
                            $"{settings.Duration.TotalSeconds:0.#} s per measurement (at most {settings.MaxPairs:N0} pairs), after a {settings.Warmup.TotalSeconds:0.#} s warm-up of each.");
        text.AppendLine(ic, $"Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}; " +
                            $"load average {loadBefore} at the start, {loadAfter} at the end.");
        text.AppendLine();
        text.AppendLine(ic, $"- Two nodes in child processes, `dotnet onex-registry.dll {string.Join(' ', NodeArguments)}`; **curve** adds `--curve-key-file FILE` " +
                            $"(a fresh key pair): its ROUTER and PUB endpoints speak CurveZMQ. A pair is a `PortRequest` then the `LeaseRelease` of its lease.");
        text.AppendLine("- **raw**: one NetMQ DEALER (a CURVE client of the curve node), pairs pipelined on it. **client**: one `RegistryClient` " +
                        "(`ServerKey` set for the curve node), N concurrent loops of `LeasePortAsync()` then disposing the set.");
        text.AppendLine("- Each round runs every measurement once, the order rotated. Median over the rounds, with the range; server CPU per pair from `/proc/PID/stat`.");
        text.AppendLine();
        text.AppendLine("| mode | side | in flight | pairs/s (median) | range | server CPU/pair | rounds |");
        text.AppendLine("|---|---|---:|---:|---|---:|---:|");
        foreach (var cell in cells.OrderBy(c => c.InFlight).ThenBy(c => c.Side).ThenBy(c => c.Mode == "off" ? 0 : 1))
        {
            if (cell.Samples.Count == 0) continue;
            var rates = cell.Samples.Select(s => s.Count.PerSecond).ToList();
            text.AppendLine(ic, $"| {cell.Mode} | {cell.Side} | {cell.InFlight} | **{Median(rates):N0}** | {rates.Min():N0}-{rates.Max():N0} | " +
                                $"{Median(cell.Samples.Select(s => s.ServerCpuUs)):F1} us | {cell.Samples.Count} |");
        }
        text.AppendLine();
        text.AppendLine(ic, $"CURVE / off, ratio of medians (target at least {Target:F2}):");
        text.AppendLine();
        var met = true;
        foreach (var inFlight in settings.InFlight)
        foreach (var side in new[] { "raw", "client" })
        {
            double? MedianOf(string mode) => cells.FirstOrDefault(c => c.Mode == mode && c.Side == side && c.InFlight == inFlight && c.Samples.Count > 0) is { } c
                ? Median(c.Samples.Select(s => s.Count.PerSecond)) : null;
            if (MedianOf("off") is not { } off || MedianOf("curve") is not { } on) continue;
            var ratio = on / off;
            met &= ratio >= Target;
            text.AppendLine(ic, $"- {side}, {inFlight} in flight: **{ratio:F2}** ({(ratio >= Target ? "met" : "missed")})");
        }
        if (notes.Count > 0)
        {
            text.AppendLine();
            foreach (var note in notes) text.AppendLine($"- {note}");
        }
        return (text.ToString(), met);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static Settings Parse(string[] args)
    {
        var options = BenchArguments.Parse(args, "--rounds", "--seconds", "--warmup", "--max-pairs", "--in-flight", "--out");
        return new Settings(
            Rounds: options.Positive("--rounds", 5),
            Duration: options.Seconds("--seconds", TimeSpan.FromSeconds(2)),
            Warmup: options.Seconds("--warmup", TimeSpan.FromSeconds(2)),
            MaxPairs: options.Positive("--max-pairs", 200_000),
            InFlight: options.PositiveList("--in-flight", [1, 64]),
            Output: options.Text("--out", ResultsPath.For("RegistryCurve.md")));
    }

    private static void Progress(string line) => Console.Error.WriteLine($"{Command}: {line}");
}
