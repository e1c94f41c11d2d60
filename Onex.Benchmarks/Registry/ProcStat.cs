using System.Globalization;

namespace Onex.Benchmarks.Registry;

/// <summary>What Linux's <c>/proc</c> tells about a process and the machine, for the console measurements.</summary>
internal static class ProcStat
{
    /// <summary>User plus system CPU time of a process so far, from <c>/proc/PID/stat</c> (clock ticks of 1/100 s).</summary>
    public static TimeSpan Cpu(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command name (which may hold spaces, so split after its closing parenthesis); utime and stime are fields 14 and 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    /// <summary>
    /// User plus system CPU time of each of a process's threads so far (<c>/proc/PID/task/TID/stat</c>), summed by
    /// thread name (<c>comm</c>, e.g. <c>.NET TP Worker</c>); threads that ended are not counted.
    /// </summary>
    public static Dictionary<string, TimeSpan> CpuByThreadName(int pid)
    {
        var byName = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended
            }
            var open = stat.IndexOf('(', StringComparison.Ordinal);
            var close = stat.LastIndexOf(')');
            var name = stat[(open + 1)..close];
            var fields = stat[(close + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            byName[name] = byName.GetValueOrDefault(name) + TimeSpan.FromMilliseconds(ticks * 10);
        }
        return byName;
    }

    /// <summary>The 1, 5 and 15 minute load averages, or "?" where there is no <c>/proc/loadavg</c>.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
