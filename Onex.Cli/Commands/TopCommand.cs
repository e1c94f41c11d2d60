using System.CommandLine;
using System.Diagnostics;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Protocol;

namespace Onex.Cli.Commands;

/// <summary>
/// <c>onex top</c>: a live terminal view of the registry (counters, request and change rates, nodes, leases, buses,
/// tools), redrawn every interval from the registry's introspection and stats; q or Ctrl-C quits, <c>--once</c>
/// prints one frame for scripts.
/// </summary>
internal static class TopCommand
{
    /// <summary>Rows shown per table in a frame; the rest is summarised in one line (a terminal has few rows).</summary>
    internal const int RowsPerTable = 15;

    // Home the cursor and clear the screen (ANSI), written only when stdout is a terminal.
    private const string ClearScreen = "\u001b[H\u001b[2J";

    public static Command Build(CliContext context)
    {
        var once = new Option<bool>("--once") { Description = "Print one frame and exit (for scripts); rates need two samples, so they are taken one interval apart." };
        var interval = CliValues.Duration("--interval", "Time between refreshes (default 1s).", TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(1));
        var command = new Command("top", "A live view of the registry: counters, request rate, nodes, leases, buses, tools. q or Ctrl-C quits.") { once, interval };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var every = parse.GetValue(interval) ?? TimeSpan.FromSeconds(1);
            var clear = !parse.GetValue(once) && !Console.IsOutputRedirected && ReferenceEquals(context.Output, Console.Out);
            using var quit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var keys = parse.GetValue(once) ? Task.CompletedTask : WatchForQuitAsync(context, quit);

            var previous = await SampleAsync(client, cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(once))
            {
                await Task.Delay(every, cancellationToken).ConfigureAwait(false);
                var current = await SampleAsync(client, cancellationToken).ConfigureAwait(false);
                await context.Output.WriteAsync(Frame(client.Endpoint, previous, current)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }
            try
            {
                var current = previous;
                while (true)
                {
                    var frame = Frame(client.Endpoint, previous, current) + "\n(q or Ctrl-C quits)\n";
                    await context.Output.WriteAsync(clear ? ClearScreen + frame : frame).ConfigureAwait(false);
                    await context.Output.FlushAsync(quit.Token).ConfigureAwait(false);
                    await Task.Delay(every, quit.Token).ConfigureAwait(false);
                    previous = current;
                    current = await SampleAsync(client, quit.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (quit.IsCancellationRequested)
            {
                // q or Ctrl-C is how top ends.
            }
            // The key reader is not awaited: a read of stdin cannot always be cancelled, and it ends with the process.
            _ = keys;
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>One look at the registry, and when it was taken.</summary>
    internal sealed record Sample(IntrospectionResponse Response, long Timestamp);

    private static async Task<Sample> SampleAsync(Transports.Registry.RegistryClient client, CancellationToken cancellationToken)
    {
        var response = await client.DescribeAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        return new Sample(response, Stopwatch.GetTimestamp());
    }

    /// <summary>Ends the view when q is typed: a key at a terminal, or a 'q' on redirected stdin. End of input does not quit.</summary>
    private static Task WatchForQuitAsync(CliContext context, CancellationTokenSource quit)
    {
        if (context.InputIsTerminal)
        {
            return Task.Run(async () =>
            {
                while (!quit.IsCancellationRequested)
                {
                    if (!Console.KeyAvailable)
                    {
                        await Task.Delay(50, quit.Token).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                        continue;
                    }
                    if (Console.ReadKey(intercept: true).KeyChar is 'q' or 'Q') quit.Cancel();
                }
            });
        }
        return Task.Run(async () =>
        {
            var buffer = new char[1];
            try
            {
                while (!quit.IsCancellationRequested && await context.Input.ReadAsync(buffer, quit.Token).ConfigureAwait(false) == 1)
                {
                    if (buffer[0] is 'q' or 'Q')
                    {
                        quit.Cancel();
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C while waiting for input.
            }
        });
    }

    /// <summary>A frame: the counters with rates between <paramref name="previous"/> and <paramref name="current"/>, then the tables.</summary>
    internal static string Frame(string endpoint, Sample previous, Sample current)
    {
        var response = current.Response;
        var output = new StringWriter();
        var seconds = Stopwatch.GetElapsedTime(previous.Timestamp, current.Timestamp).TotalSeconds;
        var sameEpoch = previous.Response.Epoch == response.Epoch;
        string Rate(long before, long after) => !sameEpoch || seconds <= 0 ? "-" : $"{Math.Max(0, after - before) / seconds:0.0}/s";

        output.WriteLine($"onex top: registry {endpoint}, epoch {response.Epoch}, sequence {response.Sequence}, at {DateTimeOffset.UtcNow:HH:mm:ss}Z");
        var stats = response.Stats;
        var before = previous.Response.Stats;
        if (stats is not null)
        {
            output.WriteLine($"up {TimeSpan.FromMilliseconds(stats.UptimeMs):d\\.hh\\:mm\\:ss}  requests {stats.RequestsServed} ({Rate(before?.RequestsServed ?? 0, stats.RequestsServed)})  " +
                             $"changes {Rate(previous.Response.Sequence, response.Sequence)}  errors {stats.ErrorsByCode.Values.Sum()}");
            output.WriteLine($"leases {stats.LeaseCount}  nodes {stats.NodeCount}  buses {stats.BusCount}  tools {stats.ToolCount}  " +
                             $"ports free {stats.FreePorts}  quarantined {stats.QuarantinedPorts}");
        }

        Section(output, "Nodes", response.Nodes, nodes => nodes.OrderBy(n => n.NodeId, StringComparer.Ordinal), nodes =>
        {
            var table = new TextTable("NODE", "NAME", "PID", "HEALTH", "LAST SEEN");
            foreach (var node in nodes) table.Add(node.NodeId, node.Name, node.ProcessId, node.Health, DescribeCommand.Time(node.LastSeenAt));
            return table;
        });
        Section(output, "Leases", response.Leases, leases => leases.OrderBy(l => l.Port), leases =>
        {
            var table = new TextTable("PORT", "NODE", "TTL", "EXPIRES", "PURPOSE");
            foreach (var lease in leases) table.Add(lease.Port, lease.NodeId, $"{lease.TtlMs / 1000.0:0.###}s", DescribeCommand.Time(lease.ExpiresAt), lease.Purpose);
            return table;
        });
        Section(output, "Buses", response.Buses, buses => buses.OrderBy(b => b.Name, StringComparer.Ordinal), buses =>
        {
            var table = new TextTable("BUS", "KIND", "NODE", "HEALTH", "ENDPOINTS");
            foreach (var bus in buses) table.Add(bus.Name, bus.Kind, bus.NodeId, bus.Health, string.Join(" ", bus.Endpoints));
            return table;
        });
        Section(output, "Tools", response.Tools, tools => tools.OrderBy(t => t.Name, StringComparer.Ordinal), tools =>
        {
            var table = new TextTable("TOOL", "VERSION", "NODE");
            foreach (var tool in tools) table.Add(tool.Name, tool.Version, tool.NodeId);
            return table;
        });
        return output.ToString();
    }

    private static void Section<T>(TextWriter output, string title, IReadOnlyList<T>? items, Func<IReadOnlyList<T>, IEnumerable<T>> order, Func<IEnumerable<T>, TextTable> table)
    {
        if (items is null) return;
        output.WriteLine();
        output.WriteLine($"{title} ({items.Count})");
        if (items.Count == 0) return;
        table(order(items).Take(RowsPerTable)).WriteTo(output);
        if (items.Count > RowsPerTable) output.WriteLine($"... and {items.Count - RowsPerTable} more (onex describe lists all)");
    }
}
