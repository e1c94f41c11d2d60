using System.CommandLine;
using Onex.Cli.Output;
using Onex.Protocol;

namespace Onex.Cli.Commands;

/// <summary><c>onex describe</c>: everything the registry holds, as tables or as the IntrospectionResponse JSON.</summary>
internal static class DescribeCommand
{
    public static Option<bool> JsonOption(string what) => new("--json") { Description = $"Print {what} as JSON (camelCase, as in the protocol)." };

    public static Command Build(CliContext context)
    {
        var json = JsonOption("the IntrospectionResponse");
        var scope = new Option<string?>("--scope")
        {
            Description = "cluster (the default): every host's entries when the registry runs in cluster mode; local: its own host's only.",
        };
        scope.AcceptOnlyFromAmong(IntrospectionScopes.Local, IntrospectionScopes.Cluster);
        var command = new Command("describe", "Show the registry's nodes, leases, buses, tools and counters.") { json, scope };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var response = await client.DescribeAsync(new IntrospectionRequest { Scope = parse.GetValue(scope) }, cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(json))
                await context.Output.WriteLineAsync(CliJson.Serialize(response)).ConfigureAwait(false);
            else
                Write(context.Output, response, client.Endpoint);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static void Write(TextWriter output, IntrospectionResponse response, string endpoint)
    {
        output.WriteLine($"Registry {endpoint}, epoch {response.Epoch}, sequence {response.Sequence}");
        if (response.Cluster is { } cluster)
            output.WriteLine($"Cluster host {cluster.Host}, {(cluster.Stale ? "view STALE (not connected to NATS or not loaded)" : "view current")}; other hosts: " +
                             (cluster.Hosts.Count == 0 ? "none" : string.Join(", ", cluster.Hosts.Select(h => $"{h.Host} {h.Health}"))));
        if (response.Stats is { } stats)
        {
            output.WriteLine($"Up {TimeSpan.FromMilliseconds(stats.UptimeMs):d\\.hh\\:mm\\:ss}, {stats.RequestsServed} requests served, " +
                             $"{stats.FreePorts} ports free, {stats.QuarantinedPorts} in quarantine");
            if (stats.ErrorsByCode.Count > 0)
                output.WriteLine("Errors: " + string.Join(", ", stats.ErrorsByCode.OrderBy(e => e.Key).Select(e => $"{e.Key} {e.Value}")));
        }

        Section(output, "Nodes", response.Nodes, nodes =>
        {
            var table = new TextTable("NODE", "NAME", "HOST", "PID", "HEALTH", "LAST SEEN");
            foreach (var node in nodes.OrderBy(n => n.NodeId, StringComparer.Ordinal))
                table.Add(node.NodeId, node.Name, node.Host, node.ProcessId, node.Health, Time(node.LastSeenAt));
            return table;
        });
        Section(output, "Leases", response.Leases, leases => LeaseTable(leases));
        Section(output, "Buses", response.Buses, buses => BusesCommand.Table(buses));
        Section(output, "Tools", response.Tools, tools => ToolsCommand.Table(tools));
    }

    public static TextTable LeaseTable(IEnumerable<PortLease> leases)
    {
        var table = new TextTable("LEASE", "PORT", "HOST", "NODE", "PROTOCOL", "TTL", "EXPIRES", "TOKEN", "PURPOSE");
        foreach (var lease in leases.OrderBy(l => l.Port))
            table.Add(lease.LeaseId, lease.Port, lease.Host, lease.NodeId, lease.Protocol, $"{lease.TtlMs / 1000.0:0.###}s",
                Time(lease.ExpiresAt), lease.FencingToken, lease.Purpose);
        return table;
    }

    public static string Time(long unixMs) =>
        unixMs <= 0 ? "-" : DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-dd HH:mm:ss.fff'Z'");

    private static void Section<T>(TextWriter output, string title, IReadOnlyList<T>? items, Func<IReadOnlyList<T>, TextTable> table)
    {
        if (items is null) return;
        output.WriteLine();
        output.WriteLine($"{title} ({items.Count})");
        if (items.Count > 0) table(items).WriteTo(output);
    }
}
