using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Protocol;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// <c>registry-memory</c>: starts a registry node in a child process (so this process's memory does not count),
/// fills it with 10,000 live leases and 1,000 tool contracts from 100 announced nodes, and reports the child's
/// working set (VmRSS from <c>/proc/PID/status</c>) before and after, and its peak (VmHWM). Does so for the memory
/// store and for the SQLite store; the SQLite node is then killed (SIGKILL) and restarted on its data directory, and
/// the time until it serves again and its working set after the restart are reported too. Writes
/// <c>results/RegistryMemory.md</c>. Not a BenchmarkDotNet suite: it is one measurement of a steady state.
/// </summary>
internal static class RegistryMemoryProbe
{
    // The working set is sampled over a few seconds while the child's GC settles: a measurement cadence, not a wait.
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(500);

    public const string Command = "registry-memory";

    private const int Leases = 10_000;
    private const int Nodes = 100;
    private const int ToolsPerNode = 10;
    private const int Window = 256;
    private const double LimitMb = 150;
    // Outside the kernel's ephemeral range (32768-60999 here) and below the default pool that test runs lease from.
    private const string PortRange = "8000-19999";

    private static List<string> _restartNodes = [];
    private static int _restarts = 3;

    public static int Run(string[] args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var output = Option("--out") ?? ResultsPath.For("RegistryMemory.md");
        // --compare-node: a second build of the node (a ReadyToRun publish, say) restarted on the same store in turn
        // with the one beside this program, so both restart times come from one run on one machine state.
        var nodes = new List<string> { RegistryNodeProcess.Dll };
        if (Option("--compare-node") is { } other) nodes.Add(Path.GetFullPath(other));
        if (!int.TryParse(Option("--restarts") ?? "3", CultureInfo.InvariantCulture, out var restarts) || restarts < 1)
        {
            Console.Error.WriteLine("registry-memory: --restarts takes a positive whole number.");
            return 2;
        }
        if (nodes.FirstOrDefault(n => !File.Exists(n)) is { } missing)
        {
            Console.Error.WriteLine($"registry-memory: {missing} not found; build Onex.Benchmarks first (or give the right --compare-node).");
            return 1;
        }
        _restartNodes = nodes;
        _restarts = restarts;

        var memoryOk = Measure(["--store", "memory"], out var memoryReport);
        // --keep-data-dir DIR: the SQLite node's store goes there and stays (to profile a restart by hand); it must not exist yet.
        var kept = Option("--keep-data-dir");
        if (kept is not null && (Directory.Exists(kept) || File.Exists(kept)))
        {
            Console.Error.WriteLine($"registry-memory: {kept} exists already; --keep-data-dir names a new directory.");
            return 2;
        }
        var dataDir = kept is null ? Directory.CreateTempSubdirectory("onex-registry-memory-").FullName : Directory.CreateDirectory(kept).FullName;
        try
        {
            var sqliteOk = Measure(["--store", "sqlite", "--data-dir", dataDir], out var sqliteReport, restart: true);
            var report = "# Registry memory and restart\n\n" + memoryReport + "\n" + sqliteReport.Replace(dataDir, "{dir}", StringComparison.Ordinal);
            Console.WriteLine(report);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            File.WriteAllText(output, report);
            Console.WriteLine($"registry-memory: report written to {output}");
            return memoryOk && sqliteOk ? 0 : 3;
        }
        finally
        {
            if (kept is null) Directory.Delete(dataDir, recursive: true);
        }
    }

    private static bool Measure(string[] storeArgs, out string report, bool restart = false)
    {
        using var child = RegistryNodeProcess.Start(["--port-range", PortRange, "--log-level", restart ? "Information" : "Warning", .. storeArgs]);
        using var client = new BenchDealer(child.RouterEndpoint);
        var stats = client.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!;
        var idle = ReadStatus(child.Id);
        Console.WriteLine($"registry-memory: child pid {child.Id}, {stats.FreePorts} free ports; idle VmRSS {Mb(idle.RssKb)}");

        var clock = Stopwatch.StartNew();
        var nodeIds = Enumerable.Range(0, Nodes).Select(i => $"node-{i:D3}.example").ToArray();
        Pipeline(client, nodeIds.Select((id, i) => (object)new NodeAnnouncement
        {
            NodeId = id, Name = $"service {i}", Host = "127.0.0.1", ProcessId = 10_000 + i, HeartbeatIntervalMs = 600_000,
            Metadata = new Dictionary<string, string> { ["team"] = $"team-{i % 12}", ["version"] = $"2.{i % 7}.{i}" },
        }), MessageTypes.Of<NodeRecord>());
        Pipeline(client, Enumerable.Range(0, Leases).Select(i => (object)new PortRequest
        {
            NodeId = nodeIds[i % Nodes], TtlMs = 3_600_000, Protocol = PortProtocols.Both, Purpose = $"listener {i % 4} of worker {i / Nodes}",
        }), MessageTypes.Of<PortGrant>());
        Pipeline(client, Enumerable.Range(0, Nodes * ToolsPerNode).Select(i =>
            (object)RealisticTools.For(nodeIds[i / ToolsPerNode], i / ToolsPerNode, i % ToolsPerNode)), MessageTypes.Of<ToolContractRecord>());
        var loadTime = clock.Elapsed;

        stats = client.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!;
        if (stats.LeaseCount != Leases || stats.ToolCount != Nodes * ToolsPerNode || stats.NodeCount != Nodes)
            throw new InvalidOperationException($"The registry holds {stats.LeaseCount} leases, {stats.ToolCount} tools, {stats.NodeCount} nodes; expected {Leases}, {Nodes * ToolsPerNode}, {Nodes}.");

        // The working set settles as the child's GC runs; sample it for a few seconds and keep every reading.
        var samples = new List<long>();
        for (var i = 0; i < 6; i++)
        {
            samples.Add(ReadStatus(child.Id).RssKb);
            Thread.Sleep(SampleInterval);
        }
        var final = ReadStatus(child.Id);
        samples.Add(final.RssKb);
        var schemaBytes = Enumerable.Range(0, Nodes * ToolsPerNode)
            .Select(i => RealisticTools.For(nodeIds[i / ToolsPerNode], i / ToolsPerNode, i % ToolsPerNode))
            .Sum(t => (long)t.InputSchema.Length + t.OutputSchema.Length);

        report = Report(storeArgs, idle, samples, final, stats, loadTime, schemaBytes);
        if (restart) report += Restart(child, storeArgs);
        return Mb(final.RssKb) <= LimitMb;
    }

    /// <summary>
    /// Kills the node with SIGKILL and starts it again on the same store, <see cref="_restarts"/> times per node build
    /// (builds take turns): how long until it serves (the first reply to an introspection), how long reading the store
    /// took (the node's own log line), and its working set then.
    /// </summary>
    private static string Restart(RegistryNodeProcess child, string[] storeArgs)
    {
        var timings = _restartNodes.ToDictionary(n => n, _ => new List<(double Serving, double Loaded, double CpuMs, long RssKb)>());
        var running = child;
        try
        {
            for (var round = 0; round < _restarts; round++)
            {
                foreach (var node in _restartNodes)
                {
                    _ = Kill(running.Id, 9);
                    if (!ReferenceEquals(running, child)) running.Dispose();
                    running = child; // disposed: a start that fails below must not dispose it again
                    var clock = Stopwatch.StartNew();
                    running = RegistryNodeProcess.Start(["--port-range", PortRange, "--log-level", "Information", .. storeArgs], node);
                    using var client = new BenchDealer(running.RouterEndpoint);
                    var stats = client.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!;
                    var serving = clock.Elapsed.TotalMilliseconds;
                    // CPU time is what the start cost, whatever else the machine runs; the wall time waits for the CPU too.
                    var cpu = ProcStat.Cpu(running.Id).TotalMilliseconds;
                    if (stats.LeaseCount != Leases || stats.ToolCount != Nodes * ToolsPerNode)
                        throw new InvalidOperationException($"After the restart the registry holds {stats.LeaseCount} leases and {stats.ToolCount} tools.");
                    timings[node].Add((serving, LoadedMs(running.Errors), cpu, ReadStatus(running.Id).RssKb));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"registry-memory: restart {round + 1} of {Path.GetDirectoryName(node)}: serving after {serving:F0} ms, {cpu:F0} ms of CPU"));
                }
            }
        }
        finally
        {
            if (!ReferenceEquals(running, child)) running.Dispose();
        }

        var text = new StringBuilder(string.Create(CultureInfo.InvariantCulture,
            $"\nKilled with SIGKILL and restarted on the same data directory, {_restarts} times per build (builds in turn), with {Leases:N0} leases and {Nodes * ToolsPerNode:N0} tools. ") +
            "Serving = from starting the new process to the first reply (an introspection); CPU = the new process's user and system time by then " +
            $"(`/proc/PID/stat`), which a busy machine does not inflate the way it does wall time; reading the store = the node's own log line. Load average at the end: {ProcStat.LoadAverage()}.\n\n" +
            "| node build | serving again (median) | each restart | CPU until serving (median) | reading the store (median) | working set after |\n|---|---:|---|---:|---:|---:|\n");
        foreach (var (node, runs) in timings)
        {
            var serving = runs.Select(r => r.Serving).Order().ToList();
            var loaded = runs.Select(r => r.Loaded).Order().ToList();
            var cpu = runs.Select(r => r.CpuMs).Order().ToList();
            text.Append(string.Create(CultureInfo.InvariantCulture,
                $"| {Describe(node)} | **{serving[serving.Count / 2]:F0} ms** | {string.Join(", ", runs.Select(r => r.Serving.ToString("F0", CultureInfo.InvariantCulture)))} ms | {cpu[cpu.Count / 2]:F0} ms | {loaded[loaded.Count / 2]:F0} ms | {Mb(runs[^1].RssKb)} MB |\n"));
        }
        return text.ToString();
    }

    /// <summary>The build beside this program, or the directory of another one (a publish output).</summary>
    private static string Describe(string node) =>
        node == RegistryNodeProcess.Dll ? "`dotnet build -c Release` output (JIT)" : $"`{Path.GetFileName(Path.GetDirectoryName(node))}/{Path.GetFileName(node)}`";

    /// <summary>The node logs "Loaded &lt;store&gt;: ... in N ms" once it has read its store; NaN when it did not.</summary>
    private static double LoadedMs(string log)
    {
        var line = log.Split('\n').FirstOrDefault(l => l.Contains("Loaded ", StringComparison.Ordinal));
        if (line is null || line.LastIndexOf(" in ", StringComparison.Ordinal) is not (> 0 and var at)) return double.NaN;
        var text = line[(at + 4)..].Trim();
        return double.TryParse(text.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) ? ms : double.NaN;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Sends every request with up to <see cref="Window"/> in flight; every reply must be <paramref name="replyType"/>.</summary>
    private static void Pipeline(BenchDealer client, IEnumerable<object> requests, string replyType, int window = Window)
    {
        var inFlight = 0;
        foreach (var request in requests)
        {
            if (inFlight == window)
            {
                Check(client.Receive(), replyType);
                inFlight--;
            }
            SendBoxed(client, request);
            inFlight++;
        }
        for (; inFlight > 0; inFlight--) Check(client.Receive(), replyType);
    }

    private static void SendBoxed(BenchDealer client, object request)
    {
        switch (request)
        {
            case NodeAnnouncement announcement: client.Send(announcement); break;
            case PortRequest portRequest: client.Send(portRequest); break;
            case ToolContractRegistration tool: client.Send(tool); break;
            default: throw new ArgumentException($"No sender for {request.GetType().Name}.", nameof(request));
        }
    }

    private static void Check(RegistryEnvelope reply, string replyType)
    {
        if (reply.MessageType != replyType) throw BenchDealer.Unexpected(reply, replyType);
    }

    private readonly record struct Status(long RssKb, long PeakKb);

    private static Status ReadStatus(int pid)
    {
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = KbOf(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) peak = KbOf(line);
        }
        return new Status(rss, peak);
    }

    private static long KbOf(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    private static double Mb(long kb) => Math.Round(kb / 1024.0, 1);

    private static string Report(string[] storeArgs, Status idle, List<long> samples, Status final, RegistryStats stats, TimeSpan loadTime, long schemaBytes)
    {
        var verdict = Mb(final.RssKb) <= LimitMb ? "within" : "OVER";
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {storeArgs[1]} store");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"`dotnet run -c Release --project Onex.Benchmarks -- {Command}`: a registry node in a child process");
        text.AppendLine(CultureInfo.InvariantCulture, $"(`dotnet onex-registry.dll --port-range {PortRange} {string.Join(' ', storeArgs.Take(2))}`, default options otherwise), filled over loopback TCP with");
        text.AppendLine(CultureInfo.InvariantCulture, $"{stats.LeaseCount:N0} live leases (protocol `both`, TTL 1 h, each with a purpose), {stats.NodeCount} announced nodes (with metadata)");
        text.AppendLine(CultureInfo.InvariantCulture, $"and {stats.ToolCount:N0} tool contracts ({schemaBytes / 1024.0 / 1024.0:F1} MiB of schema text, 3 error codes each), {Window} requests in flight.");
        text.AppendLine("The node's reply cache holds the replies to all of these requests (it keeps them 5 minutes), so they count too.");
        text.AppendLine("Working set = `VmRSS` of the child from `/proc/PID/status`; peak = `VmHWM`.");
        text.AppendLine();
        text.AppendLine("| | working set |");
        text.AppendLine("|---|---:|");
        text.AppendLine(CultureInfo.InvariantCulture, $"| idle, after start | {Mb(idle.RssKb)} MB |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| loaded, samples over 3 s | {string.Join(", ", samples.Select(s => Mb(s).ToString("F1", CultureInfo.InvariantCulture)))} MB |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| **loaded, final** | **{Mb(final.RssKb)} MB** ({verdict} the {LimitMb} MB target) |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| peak (VmHWM) | {Mb(final.PeakKb)} MB |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| growth from idle | {Mb(final.RssKb - idle.RssKb)} MB |");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Loading took {loadTime.TotalSeconds:F1} s. Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}.");
        return text.ToString();
    }
}
