using System.Runtime.InteropServices;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// A clock that counts the CPU time of the calling thread (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>), so a work budget
/// measures the work done, not how long a loaded machine kept the thread waiting: a validation is not refused
/// because other processes took the cores, and an expensive one is stopped however idle the machine is. Where the
/// clock is not available it counts elapsed time, as <see cref="TimeProvider.System"/> does.
/// </summary>
internal sealed class ThreadCpuTime : TimeProvider
{
    public static ThreadCpuTime Instance { get; } = new();

    private const int ClockThreadCpuTimeId = 3;

    private static readonly bool Available = OperatingSystem.IsLinux() && TryRead(out _);

    public override long TimestampFrequency => Available ? 1_000_000_000L : System.TimestampFrequency;

    public override long GetTimestamp() => Available && TryRead(out var nanoseconds) ? nanoseconds : System.GetTimestamp();

    private static bool TryRead(out long nanoseconds)
    {
        nanoseconds = 0;
        try
        {
            if (clock_gettime(ClockThreadCpuTimeId, out var spec) != 0) return false;
            nanoseconds = spec.Seconds * 1_000_000_000L + spec.Nanoseconds;
            return true;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static extern int clock_gettime(int clockId, out TimeSpec spec);
}
