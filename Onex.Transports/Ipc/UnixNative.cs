using System.Runtime.InteropServices;

namespace Onex.Transports.Ipc;

/// <summary>
/// The two libc calls .NET has no managed API for: the effective user id (the <c>UID</c> environment variable is
/// a shell convenience, not set for services or <c>sudo -u</c>) and a file's owner. <c>statx</c> is used rather
/// than <c>stat</c> because its buffer layout is the same on every Linux architecture (glibc 2.28+).
/// </summary>
internal static class UnixNative
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2;

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
