using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Onex.Cli.Commands;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands.Stress;

/// <summary>Counting from worker lines; separate from process handling so it can be tested on its own.</summary>
internal static class StressAnalysis
{
    public static StressApproachReport Summarize(string approach, IReadOnlyList<StressWorkerLine> holds, TimeSpan elapsed, string? problem)
    {
        var failed = holds.SelectMany(h => h.BindFailures).ToList();
        var doubles = DoubleGrants(holds);
        return new StressApproachReport(
            approach,
            Grants: holds.Sum(h => h.Ports.Count),
            BindFailures: holds.Sum(h => h.BindFailures.Select(f => f.Port).Distinct().Count()), // a port failing tcp and udp counts once
            DoubleGrants: doubles.Count,
            ElapsedSeconds: Math.Round(elapsed.TotalSeconds, 2),
            Completed: problem is null,
            FailedBinds: failed,
            DoubleGrantedPorts: doubles.Select(d => d.Port).Distinct().Order().ToList(),
            Problem: problem);
    }

    /// <summary>
    /// Pairs of holds of one port whose intervals overlap: two holders at the same time (a port listed twice in one
    /// hold counts too). Holds that touch end to start do not overlap.
    /// </summary>
    public static IReadOnlyList<(int Port, StressWorkerLine First, StressWorkerLine Second)> DoubleGrants(IReadOnlyList<StressWorkerLine> holds)
    {
        var found = new List<(int, StressWorkerLine, StressWorkerLine)>();
        foreach (var port in holds.SelectMany(h => h.Ports.Select(p => (Port: p, Hold: h))).GroupBy(x => x.Port))
        {
            var ordered = port.Select(x => x.Hold).OrderBy(h => h.HeldFrom).ToList();
            for (var i = 0; i < ordered.Count; i++)
            {
                // Sorted by start: once one starts after this one ended, all later ones do too.
                for (var j = i + 1; j < ordered.Count && ordered[j].HeldFrom < ordered[i].HeldUntil; j++)
                    found.Add((port.Key, ordered[i], ordered[j]));
            }
        }
        return found;
    }
}
