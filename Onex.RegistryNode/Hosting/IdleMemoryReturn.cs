using System.Runtime.InteropServices;

namespace Onex.RegistryNode.Hosting;

/// <summary>
/// Gives memory back to the system when the node goes quiet after a burst of work, as Go's scavenger and the JVM's
/// periodic collections do: once a second it looks at how much the process allocated; after at least
/// <see cref="WorkBytes"/> of allocation since the last return, the first second with less than
/// <see cref="QuietBytes"/> runs one full compacting collection in the runtime's aggressive mode (which also releases
/// the collector's free regions) and, on Linux with glibc, <c>malloc_trim</c> for the C heap.
/// </summary>
/// <remarks>
/// Without it the working set stays at its peak: after a fill of 10,000 leases and 1,000 tools the collector keeps
/// its young-generation budget and free regions, and the C heap its free pages. Under steady load allocation never
/// drops below <see cref="QuietBytes"/> a second, so nothing runs then; a quiet node runs it once, not every second
/// (the next one waits for another <see cref="WorkBytes"/>). The collection is a blocking one of the whole heap (tens
/// of MB loaded), at a moment when the node has nothing to do. Only the registry program
/// (<c>onex-registry</c>, the service) starts one: a process that embeds a node decides about its own collector.
/// </remarks>
internal sealed class IdleMemoryReturn : IDisposable
{
    /// <summary>How often allocation is looked at.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>Allocated in one <see cref="Interval"/> below this, the node is quiet.</summary>
    public const long QuietBytes = 1L * 1024 * 1024;

    /// <summary>Allocated since the last return at or above this, a return is worth its pause.</summary>
    public const long WorkBytes = 64L * 1024 * 1024;

    private readonly Func<long> _allocated;
    private readonly Action _giveBack;
    private readonly ITimer? _timer;
    private long _last;
    private long _sinceReturn;
    private int _busy;

    /// <summary>Starts looking once per <see cref="Interval"/> on <paramref name="time"/>'s timer.</summary>
    public IdleMemoryReturn(TimeProvider time) : this(() => GC.GetTotalAllocatedBytes(), GiveBack)
    {
        _timer = time.CreateTimer(_ => Tick(), null, Interval, Interval);
    }

    /// <summary>For tests: reads allocation from <paramref name="allocated"/> and returns memory through <paramref name="giveBack"/>; no timer.</summary>
    internal IdleMemoryReturn(Func<long> allocated, Action giveBack)
    {
        _allocated = allocated;
        _giveBack = giveBack;
        _last = allocated();
    }

    /// <summary>Memory returns so far.</summary>
    public int Returns { get; private set; }

    /// <summary>One look (the timer's); true when it gave memory back.</summary>
    internal bool Tick()
    {
        if (Interlocked.Exchange(ref _busy, 1) == 1) return false; // a slow return still running: skip this look
        try
        {
            var now = _allocated();
            var step = now - _last;
            _last = now;
            _sinceReturn += step;
            if (step >= QuietBytes || _sinceReturn < WorkBytes) return false;
            _giveBack();
            _sinceReturn = 0;
            _last = _allocated();
            Returns++;
            return true;
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public void Dispose() => _timer?.Dispose();

    private static bool s_noTrim;

    private static void GiveBack()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        if (!OperatingSystem.IsLinux() || s_noTrim) return;
        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            s_noTrim = true; // not glibc (musl has no malloc_trim): the collector's part is done all the same
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
