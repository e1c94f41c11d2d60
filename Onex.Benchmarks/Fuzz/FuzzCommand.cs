using System.Diagnostics;
using System.Globalization;
using System.Text;
using Onex.Benchmarks.Registry;

namespace Onex.Benchmarks.Fuzz;

/// <summary>
/// <c>dotnet run -c Release --project Onex.Benchmarks -- fuzz [--iterations N] [--seed S] [--port-range A-B]</c>: runs
/// <see cref="RegistryFuzzer"/> against a registry node in a child process on loopback and writes
/// <c>results/RegistryFuzz.md</c> (rate, codes, resident memory before and after). Exit code 1 when anything was wrong.
/// </summary>
internal static class FuzzCommand
{
    public const string Command = "fuzz";

    public static int Run(string[] args)
    {
        long iterations = 100_000;
        var seed = 1;
        var portRange = "26000-26999";
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--iterations": iterations = long.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seed": seed = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--port-range": portRange = args[i + 1]; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}; usage: fuzz [--iterations N] [--seed S] [--port-range A-B]");
                    return 2;
            }
        }

        using var node = RegistryNodeProcess.Start(["--store", "memory", "--port-range", portRange, "--log-level", "Warning"]);
        using var fuzzer = new RegistryFuzzer(node.RouterEndpoint, node.PubEndpoint, seed);
        fuzzer.Prepare();
        var rssBefore = Status(node.Id, "VmRSS:");
        var stopwatch = Stopwatch.StartNew();
        var result = fuzzer.Run(iterations, sent =>
        {
            if (sent % 10_000 == 0) Console.Error.WriteLine($"fuzz: {sent} sent, {stopwatch.Elapsed.TotalSeconds:F0} s, node RSS {Status(node.Id, "VmRSS:") / 1024} MiB");
        });
        var alive = !Process.GetProcessById(node.Id).HasExited;
        var sequence = alive ? fuzzer.Sequence() : -1;
        var rssAfter = Status(node.Id, "VmRSS:");
        var peak = Status(node.Id, "VmHWM:");

        var report = new StringBuilder();
        report.AppendLine("# Registry fuzz run");
        report.AppendLine();
        report.AppendLine($"`dotnet run -c Release --project Onex.Benchmarks -- fuzz --iterations {iterations} --seed {seed}`, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {ProcStat.LoadAverage()}.");
        report.AppendLine("One DEALER on loopback sends seeded mutations of valid requests (bit flips, interesting bytes, truncation, splices,");
        report.AppendLine("trailing bytes, random frames, long runs, wrong framing, reused ids, other peers' leases and wrong fencing tokens) to a");
        report.AppendLine("registry node process (`--store memory`), 64 in flight, and checks every reply (Onex.Benchmarks/Fuzz/RegistryFuzzer.cs).");
        report.AppendLine();
        report.AppendLine("| figure | value |");
        report.AppendLine("| --- | --- |");
        report.AppendLine($"| messages sent | {result.Sent:N0} |");
        report.AppendLine($"| answered / unanswered within 5 s | {result.Answered:N0} / {result.Unanswered:N0} |");
        report.AppendLine($"| replies not a well-formed envelope, a known reply type or a catalogue code (INTERNAL counts) | {result.BadReplies:N0} |");
        report.AppendLine($"| request-made changes in batches without a successful write | {result.UnexplainedStateChanges:N0} |");
        report.AppendLine($"| node alive at the end, answering (sequence) | {(alive ? "yes" : "no")} ({sequence}) |");
        report.AppendLine($"| rate | {result.Sent / result.Elapsed.TotalSeconds:N0} messages/s ({result.Elapsed.TotalSeconds:F1} s) |");
        report.AppendLine($"| node RSS before / after / peak | {rssBefore / 1024.0:F0} / {rssAfter / 1024.0:F0} / {peak / 1024.0:F0} MiB |");
        report.AppendLine($"| distinct reply codes | {result.Codes.Count} |");
        report.AppendLine();
        report.AppendLine("| reply code | count |");
        report.AppendLine("| --- | --- |");
        foreach (var (code, count) in result.Codes.OrderByDescending(c => c.Value)) report.AppendLine($"| {code} | {count:N0} |");
        if (result.Problems.Count > 0)
        {
            report.AppendLine();
            report.AppendLine("Problems (first 50):");
            report.AppendLine();
            foreach (var problem in result.Problems) report.AppendLine($"- {problem}");
        }
        var path = ResultsPath.For("RegistryFuzz.md");
        File.WriteAllText(path, report.ToString());
        Console.WriteLine(report);
        Console.Error.WriteLine($"fuzz: report written to {path}");
        var clean = alive && result.Unanswered == 0 && result.BadReplies == 0 && result.UnexplainedStateChanges == 0;
        return clean ? 0 : 1;
    }

    private static long Status(int pid, string key)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
