using System.Diagnostics;
using System.Globalization;
using System.Text;
using Onex.Benchmarks.Registry;

namespace Onex.Benchmarks.Fuzz;

/// <summary>
/// <c>dotnet run -c Release --project Onex.Benchmarks -- fuzz [--iterations N] [--seed S] [--mode bytes|malformed|auth] [--port-range A-B]</c>:
/// runs <see cref="RegistryFuzzer"/> against a registry node in a child process on loopback and writes the mode's section
/// of <c>results/RegistryFuzz.md</c> (rate, codes, resident memory before and after, the slowest probe). Exit code 1
/// when anything was wrong.
/// </summary>
internal static class FuzzCommand
{
    public const string Command = "fuzz";

    public static int Run(string[] args)
    {
        long iterations = 100_000;
        var seed = 1;
        var portRange = "26000-26999";
        var mode = FuzzMode.Bytes;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--iterations": iterations = long.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seed": seed = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--port-range": portRange = args[i + 1]; break;
                case "--mode" when Enum.TryParse<FuzzMode>(args[i + 1], ignoreCase: true, out var parsed): mode = parsed; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]} {args[i + 1]}; usage: fuzz [--iterations N] [--seed S] [--mode bytes|malformed|auth] [--port-range A-B]");
                    return 2;
            }
        }

        // The auth mode's node reads an auth file of two tenants (a token of each role each), written as onex auth add-token does.
        using var auth = mode == FuzzMode.Auth ? new FuzzAuthFile() : null;
        string[] arguments = ["--store", "memory", "--port-range", portRange, "--log-level", "Warning"];
        using var node = RegistryNodeProcess.Start(auth is null ? arguments : [.. arguments, "--auth-file", auth.Path]);
        using var fuzzer = new RegistryFuzzer(node.RouterEndpoint, seed, mode, auth);
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
        var modeName = mode.ToString().ToLowerInvariant();
        report.AppendLine($"{SectionPrefix}{modeName}`");
        report.AppendLine();
        report.AppendLine($"`dotnet run -c Release --project Onex.Benchmarks -- fuzz --iterations {iterations} --seed {seed} --mode {modeName}`, {TimeProvider.System.GetUtcNow():yyyy-MM-dd HH:mm} UTC, load average {ProcStat.LoadAverage()}.");
        report.AppendLine(mode == FuzzMode.Auth
            ? """
              Two DEALERs on loopback: one sends well-formed requests to a registry node process (`--store memory`) started with
              an auth file of two tenants (a reader, a node and an admin token each, written by `onex auth add-token`'s code),
              64 in flight, each with a credential chosen at random: no token, an unknown or altered token, the other tenant's
              token naming this tenant or used on this tenant's leases, a reader's token for writes, or a valid one (node, the
              other tenant's admin naming this tenant, or an admin naming no tenant: on a node or tool both tenants hold that is
              INVALID_ARGUMENT reason ambiguous), on the tenant's own leases and other peers' (another node's lease, a wrong
              fencing token); one in eight with a body that breaks the contract (a field of the wrong type, a nil body, a body
              that is not a map), which is MALFORMED unless the credential is refused first. Every reply is checked against
              the code and catalogue details its credential must get (UNAUTHENTICATED, PERMISSION_DENIED, LEASE_NOT_FOUND,
              NOT_OWNER, FENCED, INVALID_ARGUMENT, MALFORMED or success) and for never carrying a token; the other DEALER
              watches every change with an admin token (Onex.Benchmarks/Fuzz/RegistryFuzzer.Auth.cs).
              """
            : mode == FuzzMode.Malformed
            ? """
              One DEALER on loopback sends well-formed MessagePack that breaks the contract one field at a time (a value of the
              wrong type, nil, invalid UTF-8, a non-string key, a body that is not a map, an envelope key missing, duplicated or
              mistyped, deep nesting, trailing bytes) to a registry node process (`--store memory`), 64 in flight, and checks
              every reply (Onex.Benchmarks/Fuzz/RegistryFuzzer.cs).
              """
            : """
              One DEALER on loopback sends seeded mutations of valid requests (bit flips, interesting bytes, truncation, splices,
              trailing bytes, random frames, long runs, wrong framing, reused ids, other peers' leases and wrong fencing tokens) to a
              registry node process (`--store memory`), 64 in flight, and checks every reply (Onex.Benchmarks/Fuzz/RegistryFuzzer.cs).
              """);
        report.AppendLine("""
            After each batch of 500 the fuzzer takes a snapshot and checks the changes a `Watch` streamed since the last one
            (RegistryFuzzer.State.cs): each must be attributable to one request of the batch that got a success (its reply names
            the lease, node, bus or tool; an `Ack`'s request names it) or to the registry's own timers (expiry, missed
            heartbeats, the grace period, an owner's health or removal); every new lease of an acknowledged grant must be
            streamed and every acknowledged release must have ended its lease; each change's `oldValue` must be the state before
            it; and the snapshot must equal the previous one with the changes applied (leases, nodes, buses and tools, a
            node's `lastSeenAt` aside). A mismatch is reported with the seed, the batch and the requests naming the key.
            """);
        report.AppendLine();
        report.AppendLine("| figure | value |");
        report.AppendLine("| --- | --- |");
        report.AppendLine($"| messages sent | {result.Sent:N0} |");
        report.AppendLine($"| answered / unanswered within 5 s | {result.Answered:N0} / {result.Unanswered:N0} |");
        report.AppendLine($"| replies not a well-formed envelope, a known reply type or a catalogue code (INTERNAL counts) | {result.BadReplies:N0} |");
        report.AppendLine($"| changes attributed to an acknowledged request / made by the registry's timers | {result.AttributedChanges:N0} / {result.TimerChanges:N0} |");
        report.AppendLine($"| unexplained state changes (a change no acknowledged request or timer explains, an acknowledged grant or release not streamed, a snapshot not equal to the one before plus the changes) | {result.UnexplainedStateChanges:N0} |");
        report.AppendLine($"| node alive at the end, answering (sequence) | {(alive ? "yes" : "no")} ({sequence}) |");
        report.AppendLine($"| slowest snapshot answer after a batch (a well-behaved request beside the fuzzing) | {result.SlowestProbe.TotalMilliseconds:F0} ms |");
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
        File.WriteAllText(path, WithSection(File.Exists(path) ? File.ReadAllText(path) : "", modeName, report.ToString()));
        Console.WriteLine(report);
        Console.Error.WriteLine($"fuzz: report written to {path}");
        var clean = alive && result.Unanswered == 0 && result.BadReplies == 0 && result.UnexplainedStateChanges == 0;
        return clean ? 0 : 1;
    }

    private const string SectionPrefix = "## `--mode ";

    // The report file keeps one section per mode: a run replaces its own mode's section and keeps the others.
    private static string WithSection(string file, string mode, string section)
    {
        var sections = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in file.Split(SectionPrefix).Skip(1))
            sections[part[..part.IndexOf('`', StringComparison.Ordinal)]] = SectionPrefix + part.TrimEnd() + Environment.NewLine;
        sections[mode] = section.TrimEnd() + Environment.NewLine;
        return "# Registry fuzz runs" + Environment.NewLine + Environment.NewLine + string.Join(Environment.NewLine, sections.Values);
    }

    private static long Status(int pid, string key)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
