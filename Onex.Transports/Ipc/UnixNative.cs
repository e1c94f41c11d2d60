using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Onex.Transports.Ipc;

/// <summary>
/// The libc calls the Unix-socket bus needs beyond .NET's managed API: the effective user id (the <c>UID</c>
/// environment variable is a shell convenience, not set for services or <c>sudo -u</c>), a file's owner
/// (<c>statx</c> rather than <c>stat</c>, because its buffer layout is the same on every Linux architecture,
/// glibc 2.28+), and a blocking receive for dedicated reader threads (<c>recv</c> + <c>poll</c>).
/// </summary>
internal static class UnixNative
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2;
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int MsgDontWait = 0x40;
    private const short PollIn = 0x1;

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserId => geteuid();

    /// <summary>
    /// The owner, type and permission bits of <paramref name="path"/> itself (a symbolic link is reported as a
    /// link, not followed). Returns false when nothing exists at the path.
    /// </summary>
    /// <exception cref="IOException">statx failed for another reason than a missing file.</exception>
    public static bool TryGetStatus(string path, out UnixFileStatus status)
    {
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, out var buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            status = default;
            if (errno == ENOENT) return false;
            throw new IOException($"statx('{path}') failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
        }
        status = new UnixFileStatus(buffer.Uid, (UnixFileType)(buffer.Mode & 0xF000), (UnixFileMode)(buffer.Mode & 0xFFF));
        return true;
    }

    /// <summary>
    /// Receives into <paramref name="buffer"/> on the calling thread, blocking in <c>poll(2)</c> until data, end of
    /// stream (returns 0) or an error. It wakes straight from the kernel, without the socket engine's epoll thread
    /// and thread-pool hop that <see cref="Socket.ReceiveAsync(Memory{byte}, SocketFlags, CancellationToken)"/>
    /// takes; that hop is most of a round trip's latency. Shutting the socket down wakes a blocked call.
    /// The caller keeps the handle alive (<see cref="SafeHandle.DangerousAddRef"/>) while calling this.
    /// </summary>
    /// <exception cref="IOException">recv or poll failed (for example ECONNRESET).</exception>
    public static int Receive(SafeHandle socket, Span<byte> buffer)
    {
        var fd = (int)socket.DangerousGetHandle();
        while (true)
        {
            var received = recv(fd, ref MemoryMarshal.GetReference(buffer), (nuint)buffer.Length, MsgDontWait);
            if (received >= 0) return (int)received;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            if (errno != EAGAIN) throw SocketError("recv", errno);
            var pollFd = new PollFd { Fd = fd, Events = PollIn };
            if (poll(ref pollFd, 1, -1) < 0)
            {
                errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw SocketError("poll", errno);
            }
        }
    }

    private static IOException SocketError(string call, int errno) =>
        new($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);

    [DllImport("libc", SetLastError = true)]
    private static extern nint recv(int fd, ref byte buffer, nuint length, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int poll(ref PollFd fds, nuint count, int timeoutMs);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int dirFd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, out StatxBuffer buffer);

    // struct statx from <linux/stat.h>: 256 bytes, only the fields read here are mapped.
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatxBuffer
    {
        [FieldOffset(20)] public uint Uid;
        [FieldOffset(28)] public ushort Mode;
    }
}

/// <summary>What <see cref="UnixNative.TryGetStatus"/> reports about a path.</summary>
internal readonly record struct UnixFileStatus(uint OwnerId, UnixFileType Type, UnixFileMode Permissions);

/// <summary>The file-type bits of <c>st_mode</c>.</summary>
internal enum UnixFileType
{
    Fifo = 0x1000,
    CharacterDevice = 0x2000,
    Directory = 0x4000,
    BlockDevice = 0x6000,
    RegularFile = 0x8000,
    SymbolicLink = 0xA000,
    Socket = 0xC000,
}
