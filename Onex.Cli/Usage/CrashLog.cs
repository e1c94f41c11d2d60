using System.Globalization;

namespace Onex.Cli.Usage;

/// <summary>
/// Where an unexpected failure's details go: a person sees one line naming the file, never a stack trace.
/// The file is in the temporary directory (<c>onex-crash-*.log</c>), one per failure.
/// </summary>
internal static class CrashLog
{
    /// <summary>Writes <paramref name="exception"/> with the command line to a new file and returns its path, or null when it cannot be written.</summary>
    public static string? Write(Exception exception, IReadOnlyList<string> args)
    {
        try
        {
            var now = TimeProvider.System.GetUtcNow();
            var path = Path.Combine(Path.GetTempPath(),
                $"onex-crash-{now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}-{Environment.ProcessId}.log");
            File.AppendAllText(path,
                $"onex {typeof(CrashLog).Assembly.GetName().Version}\n" +
                $"command: onex {string.Join(' ', args)}\n" +
                $"time: {now:O}\n\n{exception}\n");
            return path;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The one line shown for an unexpected failure.</summary>
    public static string Line(Exception exception, IReadOnlyList<string> args)
    {
        var path = Write(exception, args);
        var summary = exception.Message.ReplaceLineEndings(" ");
        return path is null
            ? $"onex: unexpected failure: {summary} (no details file could be written)"
            : $"onex: unexpected failure: {summary}; details in {path}";
    }
}
