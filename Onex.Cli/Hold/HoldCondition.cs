using System.Diagnostics;
using Onex.Cli.Commands;
using Onex.Cli.Usage;

namespace Onex.Cli.Hold;

/// <summary>
/// When a command that holds something (<c>onex ports lease</c>) lets go. Always on Ctrl-C or SIGTERM, and when the
/// reader of stdout goes away; besides: the exit of a given process (<c>--until-pid</c>), nothing else
/// (<c>--until-signal</c>), or by default the end of stdin, which is read only when it is not a terminal (reading a
/// terminal from a background job stops the job).
/// </summary>
internal sealed class HoldCondition
{
    private readonly Process? _process;
    private readonly bool _readInput;

    private HoldCondition(Process? process, bool readInput, string description)
    {
        _process = process;
        _readInput = readInput;
        Description = description;
    }

    /// <summary>What ends the hold, as shown to a person ("Ctrl-C, SIGTERM or end of stdin").</summary>
    public string Description { get; }

    /// <summary>The condition the options ask for; a process that does not exist is a usage error.</summary>
    public static HoldCondition From(CliContext context, int? untilPid, bool untilSignal)
    {
        if (untilPid is { } pid)
        {
            Process process;
            try
            {
                process = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                throw new UsageException($"--until-pid {pid}: no process has that id (has it already exited?); give a running process's id, e.g. --until-pid $$.");
            }
            return new HoldCondition(process, readInput: false, $"process {pid} exits, SIGTERM or Ctrl-C");
        }
        if (untilSignal || context.InputIsTerminal)
            return new HoldCondition(null, readInput: false, "SIGTERM or Ctrl-C");
        return new HoldCondition(null, readInput: true, "SIGTERM, Ctrl-C or end of stdin");
    }

    /// <summary>Completes when the hold should end, or when <paramref name="cancellationToken"/> fires (Ctrl-C, SIGTERM).</summary>
    public async Task WaitAsync(CliContext context, CancellationToken cancellationToken)
    {
        var ends = new List<Task> { Task.Delay(Timeout.Infinite, cancellationToken) };
        if (_process is not null) ends.Add(_process.WaitForExitAsync(cancellationToken));
        if (_readInput) ends.Add(PortsCommand.WaitForStdinToCloseAsync(context.Input, cancellationToken));
        if (context.WatchOutputReader) ends.Add(StandardOutputPipe.WaitForReaderToCloseAsync());
        await Task.WhenAny(ends).ConfigureAwait(false);
    }
}
