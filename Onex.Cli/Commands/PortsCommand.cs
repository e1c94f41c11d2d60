using System.CommandLine;
using Onex.Cli.Hold;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands;

/// <summary><c>onex ports lease | release</c>.</summary>
internal static class PortsCommand
{
    /// <summary>How long <c>ports lease</c> spends releasing and departing after a lease was lost, before it exits anyway.</summary>
    internal static readonly TimeSpan LostCleanupBudget = TimeSpan.FromSeconds(1);

    public static Command Build(CliContext context) => new("ports", "Port leases.")
    {
        BuildLease(context),
        BuildRelease(context),
    };

    private static Command BuildLease(CliContext context)
    {
        var count = CliValues.Number("--count", "N", "How many ports.", min: 1);
        var ttl = CliValues.Duration("--ttl", "Requested TTL (the registry clamps it to its bounds; default: the registry's).",
            TimeSpan.FromMilliseconds(1), TimeSpan.FromDays(1));
        var purpose = new Option<string?>("--purpose") { Description = "Free text recorded with the leases.", HelpName = "TEXT" };
        var json = DescribeCommand.JsonOption("the leases (one line)");
        var untilPid = CliValues.OptionalNumber("--until-pid", "PID",
            "Hold until process PID exits (or a signal); stdin is not read. For scripts: --until-pid $$ ties the leases to the script.", 1);
        var untilSignal = new Option<bool>("--until-signal")
        {
            Description = "Hold until SIGTERM or Ctrl-C only; stdin is not read (for `onex ports lease ... &` in a script).",
        };
        var command = new Command("lease",
            "Lease ports and hold them, renewing in the background, then release them. Holds until Ctrl-C or SIGTERM; also until " +
            "end of stdin when stdin is not a terminal (unless --until-pid or --until-signal), until process PID exits with " +
            "--until-pid, and until the reader of stdout goes away (a closed pipe).")
        {
            count, ttl, purpose, json, untilPid, untilSignal,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(untilPid) is { Implicit: false } && result.GetResult(untilSignal) is { Implicit: false })
                result.AddError("--until-pid and --until-signal cannot both be given (--until-pid already ends on a signal); keep one.");
        });
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var hold = HoldCondition.From(context, parse.GetValue(untilPid), parse.GetValue(untilSignal));
            await using var client = await context.ConnectAsync(parse, cancellationToken, announce: true, nodeName: "onex ports lease", warnings: true)
                .ConfigureAwait(false);
            var options = new LeaseRequestOptions
            {
                Ttl = parse.GetValue(ttl),
                Purpose = parse.GetValue(purpose) ?? "onex ports lease",
            };
            var leases = await client.LeasePortsAsync(parse.GetRequiredValue(count), options, cancellationToken).ConfigureAwait(false);
            await using (leases.ConfigureAwait(false))
            {
                var lost = WatchForLostLeases(leases, context.Error);
                if (ClampWarning(options.Ttl, leases.Leases) is { } warning) await context.Error.WriteLineAsync(warning).ConfigureAwait(false);
                if (parse.GetValue(json))
                    await context.Output.WriteLineAsync(CliJson.Serialize(leases.Leases, indented: false)).ConfigureAwait(false);
                else
                    DescribeCommand.LeaseTable(leases.Leases).WriteTo(context.Output);
                // Not cancellable: once the leases are printed, a SIGTERM must still release them and exit 0.
                await context.Output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                await context.Error.WriteLineAsync(
                    $"onex: holding {leases.Ports.Count} port(s) as node {client.NodeId} until {hold.Description}.").ConfigureAwait(false);

                // A lost lease ends the hold at once: whoever relies on the ports (a script reading our stdout) must not
                // go on believing they are held.
                await Task.WhenAny(hold.WaitAsync(context, cancellationToken), lost).ConfigureAwait(false);
                if (lost.IsCompleted)
                {
                    await context.Error.WriteLineAsync("onex: stopped holding because a lease was lost; releasing the rest.").ConfigureAwait(false);
                    // A lease usually runs out because the registry is unreachable, where each release and the node's
                    // departure would wait out a request timeout; the registry expires what is left anyway. The usings
                    // below then return at once (disposing twice is a no-op).
                    var cleanup = Task.Run(async () =>
                    {
                        await leases.DisposeAsync().ConfigureAwait(false);
                        await client.DisposeAsync().ConfigureAwait(false);
                    }, CancellationToken.None);
                    if (await Task.WhenAny(cleanup, Task.Delay(LostCleanupBudget, CancellationToken.None)).ConfigureAwait(false) != cleanup)
                    {
                        await context.Error.WriteLineAsync(
                            $"onex: the registry did not confirm within {LostCleanupBudget.TotalSeconds:0.#} s; it expires the rest.").ConfigureAwait(false);
                        return ExitCodes.LeaseLost;
                    }
                }
            }
            await context.Error.WriteLineAsync("onex: released.").ConfigureAwait(false);
            return leases.HasLostLeases ? ExitCodes.LeaseLost : ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>A warning when the registry granted another TTL than <paramref name="requested"/> (it clamps to its bounds); else null.</summary>
    internal static string? ClampWarning(TimeSpan? requested, IReadOnlyList<PortLease> granted)
    {
        if (requested is not { } asked || granted.Count == 0) return null;
        var got = TimeSpan.FromMilliseconds(granted[0].TtlMs);
        return Math.Abs((got - asked).TotalMilliseconds) < 1
            ? null
            : $"onex: warning: the registry granted a TTL of {Durations.Format(got)}, not the {Durations.Format(asked)} asked for (it clamps --ttl to its bounds).";
    }

    /// <summary>
    /// Prints one line per lost lease (port, lease id, reason) to <paramref name="error"/> as it is lost; the task
    /// completes at the first loss.
    /// </summary>
    private static Task WatchForLostLeases(PortLeaseSet leases, TextWriter error)
    {
        var firstLoss = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reported = new HashSet<string>(StringComparer.Ordinal);
        void Report(PortLease lease, string reason)
        {
            lock (reported)
            {
                if (!reported.Add(lease.LeaseId)) return;
                error.WriteLine($"onex: lost lease {lease.LeaseId} on port {lease.Port}: {reason}");
            }
            firstLoss.TrySetResult();
        }
        leases.LeaseLost += (_, e) => Report(e.Lease, e.Reason);
        // Lost before the handler was attached: reported without the reason, which only the event carried.
        foreach (var lease in leases.LostLeases) Report(lease, "lost before the command started holding");
        return firstLoss.Task;
    }

    private static Command BuildRelease(CliContext context)
    {
        var id = new Argument<string>("ID") { Description = "The lease id (see `onex describe`)." };
        var command = new Command("release",
            "Release a lease held by any node (an operator action: presents the holder's node id and current fencing token).") { id };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var leaseId = parse.GetRequiredValue(id);
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var response = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] }, cancellationToken)
                .ConfigureAwait(false);
            var lease = response.Leases?.FirstOrDefault(l => l.LeaseId == leaseId);
            if (lease is null)
            {
                await context.Error.WriteLineAsync($"onex: no lease '{leaseId}' is held (it may have expired or been released); see `onex describe`.")
                    .ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            try
            {
                await client.ReleaseLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
            }
            catch (LeaseException ex) when (ex.Code is ErrorCodes.LeaseNotFound or ErrorCodes.LeaseExpired)
            {
                await context.Error.WriteLineAsync($"onex: lease '{leaseId}' went away before it could be released ({ex.Code}).").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            await context.Output.WriteLineAsync($"released lease {lease.LeaseId} (port {lease.Port}, node {lease.NodeId})").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>Completes when stdin reaches its end or <paramref name="cancellationToken"/> fires (Ctrl-C, SIGTERM).</summary>
    internal static async Task WaitForStdinToCloseAsync(TextReader input, CancellationToken cancellationToken)
    {
        // Console.In reads synchronously, so the read loop gets its own thread; it ends at end of input.
        var endOfInput = Task.Factory.StartNew(() =>
        {
            while (input.ReadLine() is not null)
            {
                // lines typed while holding are ignored
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var cancelled = Task.Delay(Timeout.Infinite, cancellationToken);
        await Task.WhenAny(endOfInput, cancelled).ConfigureAwait(false);
    }
}
