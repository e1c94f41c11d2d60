using System.CommandLine;
using Onex.Cli.Output;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands;

/// <summary><c>onex watch</c>: registry changes live, with every resync and status shown.</summary>
internal static class WatchCommand
{
    public static Command Build(CliContext context)
    {
        var prefix = new Option<string>("--prefix")
        {
            Description = "Only changes whose topic starts with this, e.g. registry.lease.",
            HelpName = "P",
            DefaultValueFactory = _ => ChangeTypes.TopicPrefix,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per event and line." };
        var command = new Command("watch", "Stream registry changes until interrupted; resyncs, silences and restarts are shown.") { prefix, json };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var asJson = parse.GetValue(json);
            try
            {
                await foreach (var item in client.WatchAsync(parse.GetValue(prefix) ?? ChangeTypes.TopicPrefix, cancellationToken).ConfigureAwait(false))
                {
                    await context.Output.WriteLineAsync(asJson ? CliJson.Serialize(item, indented: false) : Describe(item)).ConfigureAwait(false);
                    await context.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Ctrl-C is how a watch ends
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static string Describe(RegistryWatchEvent item)
    {
        var at = item.ObservedAt.ToString("HH:mm:ss.fff");
        return item.Kind switch
        {
            RegistryWatchEventKind.Change => $"{at} #{item.Sequence} {item.Change!.ChangeType} {item.Change.Key}{Summary(item.Change)}",
            RegistryWatchEventKind.Resynced =>
                $"{at} == resynced ({Reason(item.ResyncReason)}): epoch {item.Epoch} at #{item.Sequence}: " +
                $"{item.Snapshot!.Nodes.Count} nodes, {item.Snapshot.Leases.Count} leases, {item.Snapshot.Buses.Count} buses, " +
                $"{item.Snapshot.Tools.Count} tools{(item.ResyncReason == RegistryResyncReason.Initial ? "" : $" ({item.Detail})")}",
            RegistryWatchEventKind.EpochChanged => $"{at} == registry restarted: epoch {item.PreviousEpoch} -> {item.Epoch}",
            RegistryWatchEventKind.RegistryStopping => $"{at} == registry stopping",
            RegistryWatchEventKind.RegistrySilent => $"{at} == registry silent: {item.Detail}; still listening",
            RegistryWatchEventKind.RegistryResumed => $"{at} == registry heard again",
            _ => $"{at} == {item.Kind}: {item.Detail}",
        };
    }

    private static string Reason(RegistryResyncReason? reason) => reason switch
    {
        RegistryResyncReason.Initial => "initial snapshot",
        RegistryResyncReason.Gap => "missed a change",
        RegistryResyncReason.EpochChanged => "registry restarted",
        RegistryResyncReason.Retried => "retry",
        _ => "resync",
    };

    private static string Summary(RegistryChange change) => (change.NewValue ?? change.OldValue) switch
    {
        { Lease: { } lease } => $" port {lease.Port} node {lease.NodeId}",
        { Bus: { } bus } => $" {bus.Kind} {string.Join(" ", bus.Endpoints)} node {bus.NodeId}",
        { Tool: { } tool } => $" {tool.Version} node {tool.NodeId}",
        { Node: { } node } => $" {node.Name} {node.Health}",
        _ => "",
    };
}
