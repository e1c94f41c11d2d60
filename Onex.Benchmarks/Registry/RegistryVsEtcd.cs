using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// <c>registry-vs-etcd</c>: lease-then-release pairs per second against a registry node in a child process, once per
/// store mode (<see cref="NodeTargets"/>), raw (a pipelined DEALER) and through <see cref="RegistryClient"/>, beside
/// etcd in a child process doing lease grant-then-revoke pairs (<see cref="EtcdTargets"/>), each with 1 and 64 pairs
/// in flight. Every measurement of every target takes its turn in each round (the order rotates from round to
/// round), so load from elsewhere on the machine falls on all of them alike; the report gives medians and ranges
/// over the rounds. Loopback only. Writes <c>results/RegistryVsEtcd.md</c>. Not a BenchmarkDotNet suite: it
/// drives other processes.
/// </summary>
internal static class RegistryVsEtcd
{
    public const string Command = "registry-vs-etcd";

    // Below the default pool (20000-29999) that test runs lease from, like the in-process suites (BenchRegistry).
    private const string PortRange = "10000-19999";
    private const long EtcdTtlSeconds = 30;

    /// <summary>
    /// Arguments every node gets: the benchmark pool and no quarantine rest (a released port still goes to the back
    /// of the queue; with 30 s of rest a 10,000-port pool sustains only about 330 pairs per second).
    /// </summary>
    private static readonly string[] CommonNodeArguments = ["--port-range", PortRange, "--quarantine", "0s", "--log-level", "Warning"];

    /// <summary>
    /// The node's store modes: one argument set each (<c>{dir}</c> becomes a fresh temporary directory). A node
    /// that refuses its arguments at start (one without the durable store yet) is skipped with a note.
    /// </summary>
    /// <remarks>
    /// A node from before the durable store keeps everything in memory and knows no <c>--store</c>: the memory target
    /// falls back to no store arguments for it (<see cref="NodeTarget.Fallback"/>), with a note saying so.
    /// </remarks>
    private static readonly NodeTarget[] NodeTargets =
    [
        new("memory", "in memory, nothing written", ["--store", "memory"], Fallback: []),
        new("sqlite-process", "SQLite, survives a process crash", ["--store", "sqlite", "--data-dir", "{dir}", "--durability", "process"]),
        new("sqlite-power", "SQLite, fsync per commit (survives a power loss)", ["--store", "sqlite", "--data-dir", "{dir}", "--durability", "power"]),
    ];

    /// <summary>etcd's modes: its default (the WAL fsynced before a write is acknowledged), and without fsync, comparable to a memory store.</summary>
    private static readonly EtcdTarget[] EtcdTargets =
    [
        new("etcd", "etcd defaults: WAL fsync per commit (batched)", []),
        new("etcd-no-fsync", "etcd --unsafe-no-fsync", ["--unsafe-no-fsync"]),
    ];

    private sealed record NodeTarget(string Name, string Meaning, string[] Arguments, string[]? Fallback = null, string? Dll = null);

    /// <summary>The node targets to run: each of <see cref="NodeTargets"/>, and with <c>--compare-node</c> the same again on that build (named <c>NAME@compare</c>).</summary>
    private static IEnumerable<NodeTarget> NodeTargetsFor(Settings settings)
    {
        foreach (var target in NodeTargets.Where(t => settings.Targets.Contains(t.Name)))
        {
            yield return target;
            if (settings.CompareNode is { } dll) yield return target with { Name = $"{target.Name}@compare", Meaning = $"{target.Meaning}, the `--compare-node` build", Dll = dll };
        }
    }

    private sealed record EtcdTarget(string Name, string Meaning, string[] Arguments);

    private sealed record Settings(
        int Rounds, TimeSpan Duration, TimeSpan Warmup, long MaxPairs, int[] InFlight, string[] Targets, string[] Sides,
        TimeSpan Timeout, string Output, string? CompareNode);

    /// <summary>One measured combination: a target, a side (raw, client, etcd) and a number in flight.</summary>
    private sealed class Cell(string target, string side, int inFlight, Func<int, TimeSpan, long, Task<PairCount>> run, Func<int?> serverPid)
    {
        public string Target { get; } = target;
        public string Side { get; } = side;
        public int InFlight { get; } = inFlight;
        public List<Sample> Samples { get; } = [];

        public async Task<Sample> MeasureAsync(TimeSpan duration, long maxPairs)
        {
            var pid = serverPid();
            var serverCpu = pid is { } p ? ProcStat.Cpu(p) : TimeSpan.Zero;
            var threadCpu = pid is { } t ? RegistryThreadCpu(t) : TimeSpan.Zero;
            var benchCpu = Process.GetCurrentProcess().TotalProcessorTime;
            var count = await run(InFlight, duration, maxPairs).ConfigureAwait(false);
            var benchUsed = Process.GetCurrentProcess().TotalProcessorTime - benchCpu;
            var serverUsed = pid is { } q ? ProcStat.Cpu(q) - serverCpu : TimeSpan.Zero;
            var threadUsed = pid is { } u ? RegistryThreadCpu(u) - threadCpu : TimeSpan.Zero;
            return new Sample(count, serverUsed, benchUsed, threadUsed);
        }

        public string Label => $"{Target}/{Side}/{InFlight}";
    }

    // The node's request loop (one thread owns all state, so its CPU per pair bounds the rate): its thread is named
    // onex-registry. etcd has no such thread (zero).
    private static TimeSpan RegistryThreadCpu(int pid) => ProcStat.CpuByThreadName(pid).GetValueOrDefault("onex-registry");

    private readonly record struct Sample(PairCount Count, TimeSpan ServerCpu, TimeSpan BenchCpu, TimeSpan RegistryThreadCpu)
    {
        public double RegistryThreadCpuPerPairUs => Count.Pairs == 0 || RegistryThreadCpu == TimeSpan.Zero ? double.NaN : RegistryThreadCpu.TotalMicroseconds / Count.Pairs;
        public double ServerCpuPerPairUs => Count.Pairs == 0 ? double.NaN : ServerCpu.TotalMicroseconds / Count.Pairs;
        public double BenchCpuPerPairUs => Count.Pairs == 0 ? double.NaN : BenchCpu.TotalMicroseconds / Count.Pairs;
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
            Console.Error.WriteLine($"usage: {Command} [--rounds N] [--seconds S] [--warmup S] [--max-pairs N] [--in-flight 1,64] " +
                                    "[--targets memory,sqlite-process,sqlite-power,etcd,etcd-no-fsync] [--sides raw,client,etcd] [--timeout S] [--out FILE] [--compare-node DLL]");
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
        var deadline = Stopwatch.StartNew();
        var notes = new List<string>();
        var cells = new List<Cell>();
        var disposables = new Stack<IDisposable>();
        var asyncDisposables = new Stack<IAsyncDisposable>();
        var nodes = new List<(NodeTarget Target, RegistryNodeProcess Process, BenchDealer Dealer)>();
        var startedAt = DateTimeOffset.UtcNow;
        var loadBefore = ProcStat.LoadAverage();
        string? etcdVersion = null;
        var cutShort = false;
        // Ctrl+C stops after the measurement under way, so the node and etcd are still stopped and their directories deleted.
        var interrupted = 0;
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            Interlocked.Exchange(ref interrupted, 1);
            Progress("interrupted: stopping after this measurement");
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            foreach (var target in NodeTargetsFor(settings))
            {
                var dataDir = target.Arguments.Contains("{dir}") ? Directory.CreateTempSubdirectory($"onex-bench-{target.Name.Replace('@', '-')}-").FullName : null;
                if (dataDir is not null) disposables.Push(new DeleteDirectory(dataDir));
                var arguments = target.Arguments.Select(a => a == "{dir}" ? dataDir! : a).ToArray();
                var node = StartNode(target, arguments, target.Arguments, notes, fallbackFollows: target.Fallback is not null);
                if (node is null && target.Fallback is { } fallback)
                {
                    var note = $"`{target.Name}`: this node refuses `{string.Join(' ', target.Arguments)}` (it has no store options yet and keeps everything in memory), " +
                               $"so it ran with {(fallback.Length == 0 ? "no store arguments" : $"`{string.Join(' ', fallback)}`")}.";
                    Progress(note);
                    notes.Add(note);
                    node = StartNode(target, fallback, fallback, notes, fallbackFollows: false);
                }
                if (node is null) continue;
                disposables.Push(node);
                Progress($"node '{target.Name}' pid {node.Id} on {node.RouterEndpoint}");
                var dealer = new BenchDealer(node.RouterEndpoint);
                disposables.Push(dealer);
                nodes.Add((target, node, dealer));
                var nodeId = $"bench-raw-{target.Name}";
                var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
                {
                    Endpoint = node.RouterEndpoint,
                    PubEndpoint = node.PubEndpoint,
                    NodeId = $"bench-client-{target.Name}",
                    NodeName = Command,
                }).ConfigureAwait(false);
                asyncDisposables.Push(client);
                // A grant and a release, like etcd's grant and revoke without a keep-alive: no background renewal.
                var leaseOptions = new LeaseRequestOptions { Purpose = Command, RenewAutomatically = false };
                foreach (var inFlight in settings.InFlight)
                {
                    if (settings.Sides.Contains("raw"))
                        cells.Add(new Cell(target.Name, "raw", inFlight,
                            (n, d, m) => Task.FromResult(LeasePairLoops.Raw(dealer, nodeId, n, d, m)), () => node.Id));
                    if (settings.Sides.Contains("client"))
                        cells.Add(new Cell(target.Name, "client", inFlight,
                            (n, d, m) => LeasePairLoops.ClientAsync(client, leaseOptions, n, d, m), () => node.Id));
                }
            }

            var etcdTargets = EtcdTargets.Where(t => settings.Targets.Contains(t.Name) && settings.Sides.Contains("etcd")).ToArray();
            if (etcdTargets.Length > 0 && EtcdProcess.FindBinary() is not { } etcdBinary)
            {
                const string note = "etcd skipped: no `etcd` on PATH (Debian: `apt-get install etcd-server`).";
                Progress($"SKIPPED {note}");
                notes.Add(note);
            }
            else
            {
                foreach (var target in etcdTargets)
                {
                    var binary = EtcdProcess.FindBinary()!;
                    etcdVersion ??= EtcdProcess.Version(binary);
                    Progress($"starting {target.Name}: {binary} {string.Join(' ', target.Arguments)} (temporary data directory, loopback ports)");
                    var etcd = await EtcdProcess.StartAsync(binary, target.Arguments, CancellationToken.None).ConfigureAwait(false);
                    disposables.Push(etcd);
                    Progress($"{target.Name} pid {etcd.Id} on {etcd.ClientUrl}, data in {etcd.DataDirectory}");
                    foreach (var inFlight in settings.InFlight)
                        cells.Add(new Cell(target.Name, "etcd", inFlight,
                            (n, d, m) => LeasePairLoops.EtcdAsync(etcd.Client, EtcdTtlSeconds, n, d, m), () => etcd.Id));
                }
            }

            if (cells.Count == 0)
            {
                Progress("nothing to measure");
                return 1;
            }

            // Warm-up: every cell once (JIT, connections, the node's verifier), not recorded.
            foreach (var cell in cells)
            {
                var warm = await cell.MeasureAsync(settings.Warmup, settings.MaxPairs).ConfigureAwait(false);
                Progress($"warm-up {cell.Label}: {warm.Count.PerSecond:N0} pairs/s");
            }

            for (var round = 0; round < settings.Rounds && !cutShort; round++)
            {
                Progress($"round {round + 1}/{settings.Rounds} (load {ProcStat.LoadAverage()})");
                // Rotate the order each round, so no cell always runs right after the same neighbour.
                for (var i = 0; i < cells.Count; i++)
                {
                    if (Volatile.Read(ref interrupted) != 0)
                    {
                        cutShort = true;
                        notes.Add($"The run was interrupted in round {round + 1}; later measurements are missing.");
                        break;
                    }
                    if (deadline.Elapsed > settings.Timeout)
                    {
                        cutShort = true;
                        notes.Add($"The run reached its {settings.Timeout.TotalSeconds:0} s limit in round {round + 1}; later rounds are missing.");
                        Progress("time limit reached; reporting what was measured");
                        break;
                    }
                    var cell = cells[(i + round) % cells.Count];
                    var sample = await cell.MeasureAsync(settings.Duration, settings.MaxPairs).ConfigureAwait(false);
                    cell.Samples.Add(sample);
                    Progress($"  {cell.Label,-28} {sample.Count.PerSecond,10:N0} pairs/s ({sample.Count.Pairs:N0} in {sample.Count.Elapsed.TotalSeconds:F2} s; " +
                             $"server CPU {sample.ServerCpuPerPairUs:F1} us/pair, of it the request loop {sample.RegistryThreadCpuPerPairUs:F1}, bench CPU {sample.BenchCpuPerPairUs:F1} us/pair)");
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"measurement target={cell.Target} side={cell.Side} in-flight={cell.InFlight} round={round + 1} pairs={sample.Count.Pairs} " +
                        $"seconds={sample.Count.Elapsed.TotalSeconds:F3} per-second={sample.Count.PerSecond:F0} server-cpu-us={sample.ServerCpuPerPairUs:F1} loop-cpu-us={sample.RegistryThreadCpuPerPairUs:F1} bench-cpu-us={sample.BenchCpuPerPairUs:F1}"));
                }
            }

            // Every pair released what it leased: a node left holding leases would mean a pair was miscounted.
            foreach (var (target, _, dealer) in nodes)
            {
                var stats = dealer.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!;
                Progress($"node '{target.Name}' after the run: {stats.LeaseCount} leases held, {stats.FreePorts} free ports");
                if (stats.LeaseCount != 0) notes.Add($"`{target.Name}` still held {stats.LeaseCount} leases after the run.");
            }
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
            while (asyncDisposables.TryPop(out var d)) await d.DisposeAsync().ConfigureAwait(false);
            while (disposables.TryPop(out var d)) d.Dispose();
        }

        var report = Report(settings, cells, notes, startedAt, loadBefore, ProcStat.LoadAverage(), etcdVersion);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(settings.Output))!);
        File.WriteAllText(settings.Output, report);
        Console.Error.WriteLine(report);
        Progress($"report written to {settings.Output}");
        return cutShort ? 1 : 0;
    }

    /// <summary>Starts a node for <paramref name="target"/>; null (and a note naming <paramref name="shownArguments"/>) when it exits at start.</summary>
    private static RegistryNodeProcess? StartNode(NodeTarget target, string[] storeArguments, string[] shownArguments, List<string> notes, bool fallbackFollows)
    {
        var arguments = CommonNodeArguments.Concat(storeArguments).ToArray();
        Progress($"starting node '{target.Name}': dotnet onex-registry.dll {string.Join(' ', arguments)}");
        try
        {
            return RegistryNodeProcess.Start(arguments, target.Dll);
        }
        catch (RegistryNodeStartException ex)
        {
            var firstError = ex.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "(no message)";
            var note = ex.IsUsageError
                ? $"`{target.Name}` skipped: this node does not accept `{string.Join(' ', shownArguments)}` yet (exit code {ex.ExitCode}: \"{firstError}\")."
                : $"`{target.Name}` skipped: the node did not start (exit code {ex.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none"}: \"{firstError}\").";
            // A refused store option is expected until the durable store lands; the fallback (if any) says what runs instead.
            if (fallbackFollows && ex.IsUsageError) return null;
            Progress($"SKIPPED {note}");
            notes.Add(note);
            return null;
        }
    }

    private static string Report(Settings settings, List<Cell> cells, List<string> notes, DateTimeOffset startedAt, string loadBefore, string loadAfter, string? etcdVersion)
    {
        var text = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        text.AppendLine("# Registry node vs etcd: lease + release pairs per second");
        text.AppendLine();
        text.AppendLine(ic, $"`dotnet run -c Release --project Onex.Benchmarks -- {Command}`, {startedAt:yyyy-MM-dd HH:mm} UTC: {settings.Rounds} rounds of " +
                            $"{settings.Duration.TotalSeconds:0.#} s per measurement (at most {settings.MaxPairs:N0} pairs), after a {settings.Warmup.TotalSeconds:0.#} s warm-up of each.");
        text.AppendLine(ic, $"Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}; " +
                            $"load average {loadBefore} at the start, {loadAfter} at the end. {etcdVersion ?? "etcd not measured"}.");
        text.AppendLine();
        text.AppendLine(ic, $"- **Registry node**: `dotnet onex-registry.dll --port-range {PortRange} --quarantine 0s` plus the store arguments, in a child process,");
        text.AppendLine("  on OS-chosen loopback endpoints. A pair is a `PortRequest` (protocol `both`: the full free check, default TTL) and, once granted, " +
                            "the `LeaseRelease` of that lease.");
        text.AppendLine("  - **raw**: one NetMQ DEALER sending `RegistryCodec` envelopes, pairs pipelined on it (the in-process throughput suite's loop).");
        text.AppendLine("  - **client**: one `RegistryClient` (default options; node announced), N concurrent loops of `LeasePortAsync()` then disposing " +
                        "the `PortLeaseSet` (which releases it), as an application leases and gives back a port. `RenewAutomatically` is off, so the " +
                        "pair is a grant and a release like etcd's grant and revoke without a keep-alive.");
        text.AppendLine(ic, $"- **etcd**: `etcd` in a child process (single member, client and peer URLs on 127.0.0.1, a fresh temporary data directory), " +
                            $"`dotnet-etcd` over one gRPC channel, N concurrent loops of `LeaseGrant` (TTL {EtcdTtlSeconds} s) then `LeaseRevoke`.");
        text.AppendLine("- Every measurement of every target takes its turn in each round, the order rotated per round. Pairs per second: median over the rounds, " +
                        "with the lowest and highest. CPU per pair: the server process's (node or etcd, from `/proc/PID/stat`) and the benchmark process's " +
                        "(raw loop, client or etcd client), medians. The request loop: the node's `onex-registry` thread, which owns all state (its CPU per pair bounds the rate).");
        text.AppendLine();
        text.AppendLine("| target | side | in flight | pairs/s (median) | range | server CPU/pair | of it the request loop | bench CPU/pair | rounds |");
        text.AppendLine("|---|---|---:|---:|---|---:|---:|---:|---:|");
        foreach (var cell in cells.OrderBy(c => c.InFlight).ThenBy(c => Order(c.Target)).ThenBy(c => c.Side))
        {
            if (cell.Samples.Count == 0) continue;
            var rates = cell.Samples.Select(s => s.Count.PerSecond).ToList();
            text.AppendLine(ic, $"| {cell.Target} | {cell.Side} | {cell.InFlight} | **{Median(rates):N0}** | {rates.Min():N0}-{rates.Max():N0} | " +
                                $"{Median(cell.Samples.Select(s => s.ServerCpuPerPairUs)):F1} us | {Median(cell.Samples.Select(s => s.RegistryThreadCpuPerPairUs)):F1} us | " +
                                $"{Median(cell.Samples.Select(s => s.BenchCpuPerPairUs)):F1} us | {cell.Samples.Count} |");
        }
        text.AppendLine();
        var ratios = new List<string>();
        foreach (var inFlight in settings.InFlight)
        {
            double? MedianOf(string target, string side) =>
                cells.FirstOrDefault(c => c.Target == target && c.Side == side && c.InFlight == inFlight && c.Samples.Count > 0) is { } c
                    ? Median(c.Samples.Select(s => s.Count.PerSecond))
                    : null;
            foreach (var node in NodeTargetsFor(settings))
            {
                if (MedianOf(node.Name, "raw") is not { } raw) continue;
                if (node.Dll is not null && MedianOf(node.Name[..node.Name.IndexOf('@')], "raw") is { } thisBuild)
                    ratios.Add(string.Create(ic, $"{inFlight} in flight, raw: `{node.Name[..node.Name.IndexOf('@')]}` this build / `--compare-node` build = **{thisBuild / raw:F2}**"));
                if (node.Dll is null && node.Name != "memory" && MedianOf("memory", "raw") is { } memory)
                    ratios.Add(string.Create(ic, $"{inFlight} in flight, raw: `{node.Name}` / `memory` = **{raw / memory:F2}**"));
                if (node.Dll is not null && node.Name != "memory@compare" && MedianOf("memory@compare", "raw") is { } memoryCompare)
                    ratios.Add(string.Create(ic, $"{inFlight} in flight, raw: `{node.Name}` / `memory@compare` = **{raw / memoryCompare:F2}**"));
                if (MedianOf(node.Name, "client") is { } client)
                    ratios.Add(string.Create(ic, $"{inFlight} in flight, `{node.Name}`: client / raw = **{client / raw:F2}**"));
                foreach (var etcd in EtcdTargets)
                {
                    if (MedianOf(etcd.Name, "etcd") is { } e)
                    {
                        var versusClient = MedianOf(node.Name, "client") is { } c2 ? string.Create(ic, $", / client = {e / c2:F2}") : "";
                        ratios.Add(string.Create(ic, $"{inFlight} in flight: `{etcd.Name}` / `{node.Name}` raw = {e / raw:F2}{versusClient}"));
                    }
                }
            }
        }
        if (ratios.Count > 0)
        {
            text.AppendLine("Ratios of medians:");
            text.AppendLine();
            foreach (var ratio in ratios) text.AppendLine($"- {ratio}");
            text.AppendLine();
        }
        text.AppendLine("Targets:");
        text.AppendLine();
        foreach (var node in NodeTargetsFor(settings))
            text.AppendLine($"- `{node.Name}`: {node.Meaning} (`{string.Join(' ', node.Arguments)}`" +
                            (node.Arguments.Contains("{dir}") ? "; `{dir}`: a fresh temporary directory, deleted at the end)" : ")"));
        foreach (var etcd in EtcdTargets.Where(t => settings.Targets.Contains(t.Name)))
            text.AppendLine($"- `{etcd.Name}`: {etcd.Meaning}");
        if (notes.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("Notes:");
            text.AppendLine();
            foreach (var note in notes) text.AppendLine($"- {note}");
        }
        return text.ToString();
    }

    // Node targets first, each followed by its --compare-node twin, then etcd's.
    private static int Order(string target)
    {
        var compare = target.EndsWith("@compare", StringComparison.Ordinal) ? 1 : 0;
        var name = compare == 1 ? target[..target.IndexOf('@')] : target;
        return Array.FindIndex(NodeTargets, t => t.Name == name) is var i and >= 0
            ? 2 * i + compare
            : 2 * NodeTargets.Length + Array.FindIndex(EtcdTargets, t => t.Name == name);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static Settings Parse(string[] args)
    {
        var options = BenchArguments.Parse(args,
            "--rounds", "--seconds", "--warmup", "--max-pairs", "--in-flight", "--targets", "--sides", "--timeout", "--out", "--compare-node");
        var targets = NodeTargets.Select(t => t.Name).Concat(EtcdTargets.Select(t => t.Name)).ToArray();
        string[] sides = ["raw", "client", "etcd"];
        return new Settings(
            Rounds: options.Positive("--rounds", 5),
            Duration: options.Seconds("--seconds", TimeSpan.FromSeconds(2)),
            Warmup: options.Seconds("--warmup", TimeSpan.FromSeconds(3)),
            MaxPairs: options.Positive("--max-pairs", 200_000),
            InFlight: options.PositiveList("--in-flight", [1, 64]),
            Targets: options.Names("--targets", targets, targets),
            Sides: options.Names("--sides", sides, sides),
            Timeout: options.Seconds("--timeout", TimeSpan.FromMinutes(15)),
            Output: options.Text("--out", ResultsPath.For("RegistryVsEtcd.md")),
            CompareNode: options.Text("--compare-node", "") is { Length: > 0 } dll ? Path.GetFullPath(dll) : null);
    }

    private static void Progress(string line) => Console.Error.WriteLine($"{Command}: {line}");

    private sealed class DeleteDirectory(string path) : IDisposable
    {
        public void Dispose()
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
    }
}
