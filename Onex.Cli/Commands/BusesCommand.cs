using System.CommandLine;
using Onex.Cli.Output;
using Onex.Protocol;

namespace Onex.Cli.Commands;

/// <summary><c>onex buses list</c>.</summary>
internal static class BusesCommand
{
    public static Command Build(CliContext context)
    {
        var json = DescribeCommand.JsonOption("the buses");
        var list = new Command("list", "List the registered event buses.") { json };
        list.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var response = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses] }, cancellationToken)
                .ConfigureAwait(false);
            var buses = response.Buses ?? [];
            if (parse.GetValue(json))
                await context.Output.WriteLineAsync(CliJson.Serialize(buses)).ConfigureAwait(false);
            else if (buses.Count == 0)
                await context.Output.WriteLineAsync("No buses registered.").ConfigureAwait(false);
            else
                Table(buses).WriteTo(context.Output);
            return ExitCodes.Ok;
        }));
        return new Command("buses", "Event bus registrations.") { list };
    }

    public static TextTable Table(IEnumerable<EventBusRecord> buses)
    {
        var table = new TextTable("BUS", "KIND", "NODE", "HEALTH", "ENDPOINTS");
        foreach (var bus in buses.OrderBy(b => b.Name, StringComparer.Ordinal))
            table.Add(bus.Name, bus.Kind, bus.NodeId, bus.Health, string.Join(" ", bus.Endpoints));
        return table;
    }
}
