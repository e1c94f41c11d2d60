using System.Runtime.InteropServices;

namespace Onex.Cli.Hold;

/// <summary>
/// Notices when whoever reads this process's stdout goes away: on Linux, <c>poll(2)</c> reports POLLERR on the write
/// end of a pipe whose read end was closed (and POLLHUP on a terminal that hung up). This lets
/// <c>onex ports lease | { read -r leases; ...; }</c> release the leases when the reading group ends, although
/// nothing is written after the first line. On a file or /dev/null nothing is ever reported.
/// </summary>
internal static class StandardOutputPipe
{
    private const short PollErr = 0x8;
    private const short PollHup = 0x10;
    private const int EINTR = 4;

    /// <summary>Completes when stdout's reader is gone (never, where that cannot be told); waits on a thread of its own.</summary>
    public static async Task WaitForReaderToCloseAsync()
    {
        var gone = await Task.Factory.StartNew(WaitBlocking, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .ConfigureAwait(false);
        if (!gone) await Task.Delay(Timeout.Infinite).ConfigureAwait(false);
    }

    private static bool WaitBlocking()
    {
        if (!OperatingSystem.IsLinux()) return false;
        while (true)
        {
            var pollFd = new PollFd { Fd = 1, Events = 0 };
            if (poll(ref pollFd, 1, -1) < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINTR) continue;
                return false; // poll itself failed: nothing to watch, so the hold never ends on this account
            }
            if ((pollFd.ReturnedEvents & (PollErr | PollHup)) != 0) return true;
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int poll(ref PollFd fds, nuint count, int timeoutMs);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }
}
