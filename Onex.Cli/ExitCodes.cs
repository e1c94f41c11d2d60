namespace Onex.Cli;

/// <summary>The exit codes of <c>onex</c> (also listed in <c>onex --help</c> and docs/CLI.md).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>A payload failed validation, or the thing asked for (lease, tool, bus) does not exist.</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong: unknown command or option, missing argument, unreadable file.</summary>
    public const int Usage = 2;

    /// <summary>The registry did not answer (not running, wrong endpoint, unreachable).</summary>
    public const int Unavailable = 3;

    /// <summary>The registry answered with an error; its code is printed.</summary>
    public const int Refused = 4;

    /// <summary>
    /// <c>onex ports lease</c> lost a lease it held (expired, fenced, taken back, or ran out on this machine's clock
    /// while the registry could not be reached); it exits at once, after a line naming the port, lease id and reason.
    /// </summary>
    public const int LeaseLost = 5;

    /// <summary>
    /// An unexpected failure (a bug, or something the command does not know how to report): one line names a log file
    /// in the temporary directory holding the details. 70 is <c>EX_SOFTWARE</c> of sysexits.h.
    /// </summary>
    public const int Internal = 70;

    /// <summary>Interrupted (Ctrl-C, SIGTERM) while waiting for a one-shot command.</summary>
    public const int Interrupted = 130;

    /// <summary>The text shown in <c>onex --help</c>.</summary>
    public const string HelpText =
        "Exit codes: 0 ok; 1 validation failed or not found; 2 usage error; 3 registry unavailable; " +
        "4 registry refused the request (its error code is printed); 5 a held lease was lost (ports lease); " +
        "70 unexpected failure (details in the log file named); 130 interrupted.";
}
