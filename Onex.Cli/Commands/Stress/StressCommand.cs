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

/// <summary>
/// <c>onex ports stress</c>: P worker processes each lease K ports R times through the registry and bind every one
/// (TCP listen and UDP on 127.0.0.1); then the same load the common ad-hoc way (bind port 0, read the number, close,
/// hand it to another process, which binds it). Prints bind failures and double grants of both approaches.
/// <c>onex ports stress-worker</c> (hidden) is one worker.
/// </summary>
internal static class StressCommand
{
    /// <summary>The registry approach, as named in the report.</summary>
    public const string Registry = "registry";

    /// <summary>The bind-port-0-and-hand-over approach, as named in the report.</summary>
    public const string AdHoc = "ad-hoc";

    /// <summary>Most ports one lease request may ask for (PROTOCOL.md section 12); larger rounds take several requests.</summary>
    public const int MaxPortsPerRequest = 64;

    /// <summary>Adds <c>stress</c> and the hidden <c>stress-worker</c> to the <c>ports</c> command.</summary>
    public static Command AddTo(Command ports, CliContext context)
    {
        ports.Add(BuildStress(context));
        ports.Add(BuildWorker(context));
        return ports;
    }

    private static Option<int> Bounded(string name, string description, string helpName, int min, int max, int? defaultValue = null) =>
        CliValues.Number(name, helpName, $"{description} ({min}-{max}).", min, max, defaultValue);

    private static Command BuildStress(CliContext context)
    {
        var processes = Bounded("--processes", "Worker processes", "P", 2, 64);
        var ports = Bounded("--ports", "Ports each worker takes per round", "K", 1, 1000);
        var rounds = Bounded("--rounds", "Rounds per worker", "R", 1, 100, defaultValue: 5);
        var hold = CliValues.Duration("--hold", "How long each worker holds its bound ports per round (0-60s; default 100ms).",
            TimeSpan.Zero, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(100));
        var limit = CliValues.Duration("--time-limit", "How long the whole run may take before the workers are killed (1s-1h; default 2m).",
            TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), TimeSpan.FromMinutes(2));
        var json = DescribeCommand.JsonOption("the report");
        var command = new Command("stress",
            "Stress-test port allocation: P processes lease K ports R times through the registry and bind them (TCP and UDP), " +
            "then the same load picking ports the ad-hoc way (bind port 0, close, hand to another process). Exit 0 when the " +
            "registry approach had no bind failure and no double grant. Without --registry or $ONEX_REGISTRY_ENDPOINT it uses " +
            "a registry on the default endpoint, or starts one in this process for the run.")
        {
            processes, ports, rounds, hold, limit, json,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var settings = new StressSettings(
                parse.GetValue(processes), parse.GetValue(ports), parse.GetValue(rounds), (int)parse.GetValue(hold)!.Value.TotalMilliseconds,
                parse.GetValue(limit)!.Value);
            await using var target = await RegistryTarget.ResolveAsync(context, parse, cancellationToken).ConfigureAwait(false);
            if (!parse.GetValue(json))
                await context.Error.WriteLineAsync(
                    $"onex: {settings.Processes} processes x {settings.Ports} ports x {settings.Rounds} rounds, registry {target.Description}").ConfigureAwait(false);

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(settings.TimeLimit);
            // Progress on stderr (stdout stays the report): each approach's start and outcome, as it happens.
            var progress = parse.GetValue(json) ? TextWriter.Null : context.Error;
            await progress.WriteLineAsync($"onex: [1/2] {Registry} approach: {settings.Processes} workers running...").ConfigureAwait(false);
            var registry = await StressRun.RunAsync(Registry, settings, target, deadline.Token).ConfigureAwait(false);
            await progress.WriteLineAsync($"onex: [1/2] {Registry} approach: {registry.Grants} grants in {registry.ElapsedSeconds:0.0} s").ConfigureAwait(false);
            await progress.WriteLineAsync($"onex: [2/2] {AdHoc} approach: {settings.Processes} workers running...").ConfigureAwait(false);
            var adHoc = await StressRun.RunAsync(AdHoc, settings, target, deadline.Token).ConfigureAwait(false);
            await progress.WriteLineAsync($"onex: [2/2] {AdHoc} approach: {adHoc.Grants} grants in {adHoc.ElapsedSeconds:0.0} s").ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();

            var report = new StressReport(settings.Processes, settings.Ports, settings.Rounds, settings.HoldMs, target.Description, [registry, adHoc],
                Passed: registry.Completed && registry.BindFailures == 0 && registry.DoubleGrants == 0);
            if (parse.GetValue(json))
                await context.Output.WriteLineAsync(CliJson.Serialize(report)).ConfigureAwait(false);
            else
                WriteTable(report, context.Output);
            return report.Passed ? ExitCodes.Ok : ExitCodes.Failed;
        }));
        return command;
    }

    private static void WriteTable(StressReport report, TextWriter output)
    {
        var table = new TextTable("approach", "grants", "bind failures", "double grants", "elapsed");
        foreach (var approach in report.Approaches)
            table.Add(approach.Approach, approach.Grants, approach.BindFailures, approach.DoubleGrants, $"{approach.ElapsedSeconds:0.00} s");
        table.WriteTo(output);
        foreach (var approach in report.Approaches)
        {
            if (approach.Problem is { } problem) output.WriteLine($"{approach.Approach}: incomplete: {problem}");
            if (approach.FailedBinds.Count > 0)
                output.WriteLine($"{approach.Approach}: bind failures: {string.Join(", ", approach.FailedBinds.Take(10).Select(f => $"{f.Port}/{f.Protocol} {f.Error}"))}" +
                                 (approach.FailedBinds.Count > 10 ? $" (+{approach.FailedBinds.Count - 10} more)" : ""));
            if (approach.DoubleGrantedPorts.Count > 0)
                output.WriteLine($"{approach.Approach}: double grants on ports: {string.Join(", ", approach.DoubleGrantedPorts.Take(10))}" +
                                 (approach.DoubleGrantedPorts.Count > 10 ? $" (+{approach.DoubleGrantedPorts.Count - 10} more)" : ""));
        }
        output.WriteLine(report.Passed
            ? "registry approach: no bind failure, no double grant"
            : "registry approach: FAILED (see above)");
    }

    private static Command BuildWorker(CliContext context)
    {
        var approach = new Option<string>("--approach") { Required = true, HelpName = "APPROACH" };
        approach.AcceptOnlyFromAmong(Registry, AdHoc);
        var worker = CliValues.Number("--worker", "N", "The worker's number.", 0);
        var ports = Bounded("--ports", "Ports per round", "K", 1, 1000);
        var rounds = Bounded("--rounds", "Rounds", "R", 1, 100);
        var hold = CliValues.Duration("--hold", "How long to hold each round's ports.", TimeSpan.Zero, TimeSpan.FromMinutes(1));
        hold.Required = true;
        var command = new Command("stress-worker", "One worker of `onex ports stress` (JSON lines on stdout).")
        {
            Hidden = true,
        };
        command.Options.Add(approach);
        command.Options.Add(worker);
        command.Options.Add(ports);
        command.Options.Add(rounds);
        command.Options.Add(hold);
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var settings = new StressWorkerSettings(parse.GetValue(worker), parse.GetValue(ports), parse.GetValue(rounds),
                (int)parse.GetValue(hold)!.Value.TotalMilliseconds);
            if (parse.GetValue(approach) == Registry)
            {
                await using var client = await context.ConnectAsync(parse, cancellationToken, announce: true, nodeName: $"onex ports stress-worker {settings.Worker}")
                    .ConfigureAwait(false);
                await StressWorker.RunRegistryAsync(client, settings, context.Output, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await StressWorker.RunAdHocAsync(settings, context.Input, context.Output, cancellationToken).ConfigureAwait(false);
            }
            return ExitCodes.Ok;
        }));
        return command;
    }
}
