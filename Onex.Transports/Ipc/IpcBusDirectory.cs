using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Onex.Errors;

namespace Onex.Transports.Ipc;

/// <summary>
/// The filesystem side of a hosted bus: <c>&lt;root&gt;/&lt;name&gt;/</c> (mode 0700) holding <c>bus.lock</c> and
/// <c>bus.sock</c>. The 0700 directory is the access control: the socket itself gets 0600, but only the directory
/// mode stops other users reaching it on every kernel. A host claims the directory by taking an exclusive lock on
/// <c>bus.lock</c> (<c>flock</c>, which .NET takes for <see cref="FileShare.None"/>; the kernel drops it when the
/// process dies), so two hosts racing cannot both win, then clears a stale socket left by a crashed host.
/// </summary>
internal sealed class IpcBusDirectory : IDisposable
{
    /// <summary>The socket file name inside the bus directory.</summary>
    public const string SocketFileName = "bus.sock";

    /// <summary>The lock file name inside the bus directory.</summary>
    public const string LockFileName = "bus.lock";

    private const UnixFileMode PrivateDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode GroupOrOtherBits = (UnixFileMode)0x3F; // 0077
    private const int MaxSocketPathBytes = 107; // sun_path is 108 bytes including the terminating NUL

    private readonly ILogger _logger;
    private FileStream? _lock;
    private bool _socketBound;

    private IpcBusDirectory(string busDirectory, FileStream lockStream, ILogger logger)
    {
        BusDirectory = busDirectory;
        SocketPath = Path.Combine(busDirectory, SocketFileName);
        LockPath = Path.Combine(busDirectory, LockFileName);
        _lock = lockStream;
        _logger = logger;
    }

    /// <summary>The bus directory, <c>&lt;root&gt;/&lt;name&gt;</c>.</summary>
    public string BusDirectory { get; }

    /// <summary>Where the host binds its socket.</summary>
    public string SocketPath { get; }

    /// <summary>The lock file held while hosting.</summary>
    public string LockPath { get; }

    /// <summary>This process's effective user id.</summary>
    public static uint EffectiveUserId => UnixNative.EffectiveUserId;

    /// <summary>True for 1-64 characters of letters, digits and <c>-_.</c> not starting with a dot (so never <c>..</c>).</summary>
    public static bool IsValidBusName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 64 || name[0] == '.') return false;
        foreach (var c in name)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.')) return false;
        return true;
    }

    /// <summary>
    /// Claims <c>&lt;root&gt;/&lt;busName&gt;</c> for hosting: creates or verifies both directories, takes the lock
    /// and removes a stale socket. The caller binds <see cref="SocketPath"/> next and disposes the claim when done.
    /// </summary>
    /// <exception cref="IpcBusSetupException">An insecure directory, a live host, a non-socket at the socket path, or a too-long path.</exception>
    public static async Task<IpcBusDirectory> ClaimAsync(string root, string busName, ILogger logger, CancellationToken cancellationToken)
    {
        var busDirectory = Path.Combine(Path.GetFullPath(root), busName);
        var socketPath = Path.Combine(busDirectory, SocketFileName);
        EnsureSocketPathFits(socketPath);

        // A host that is shutting down removes the bus directory; retry if that happens under our feet.
        FileStream? lockStream = null;
        for (var attempt = 1; lockStream is null; attempt++)
        {
            EnsurePrivateDirectory(root, logger);
            EnsurePrivateDirectory(busDirectory, logger);
            try
            {
                lockStream = OpenLock(Path.Combine(busDirectory, LockFileName));
            }
            catch (DirectoryNotFoundException) when (attempt < 3)
            {
                IpcLog.BusDirectoryVanished(logger, busDirectory);
            }
        }

        var claim = new IpcBusDirectory(busDirectory, lockStream, logger);
        try
        {
            await claim.RemoveStaleSocketAsync(cancellationToken).ConfigureAwait(false);
            return claim;
        }
        catch
        {
            claim.ReleaseLockOnly();
            throw;
        }
    }

    /// <summary>Verifies, before joining, that the socket's directory is private to this user.</summary>
    /// <exception cref="UnavailableException">The directory does not exist (no host).</exception>
    /// <exception cref="IpcBusSetupException">The directory is not private to this user.</exception>
    public static void VerifyJoinable(string socketPath)
    {
        EnsureSocketPathFits(socketPath);
        var directory = Path.GetDirectoryName(socketPath) ?? "/";
        if (!UnixNative.TryGetStatus(directory, out var status))
            throw new UnavailableException(
                $"No bus is hosted at '{socketPath}': its directory does not exist.",
                new Dictionary<string, string> { ["path"] = socketPath });
        CheckPrivate(directory, status);
    }

    /// <summary>Throws when <paramref name="socketPath"/> does not fit a Unix socket address.</summary>
    public static void EnsureSocketPathFits(string socketPath)
    {
        var bytes = Encoding.UTF8.GetByteCount(socketPath);
        if (bytes > MaxSocketPathBytes)
            throw new IpcBusSetupException(
                IpcSetupFailure.SocketPathTooLong,
                $"Socket path '{socketPath}' is {bytes} bytes; a Unix socket address holds at most {MaxSocketPathBytes}. Use a shorter root directory.",
                socketPath);
    }

    /// <summary>Creates <paramref name="path"/> with mode 0700 when missing, then checks it is private to this user.</summary>
    /// <exception cref="IpcBusSetupException">It exists but is not a 0700 directory owned by this user.</exception>
    public static void EnsurePrivateDirectory(string path, ILogger logger)
    {
        if (!OperatingSystem.IsLinux()) throw NotLinux();
        if (!UnixNative.TryGetStatus(path, out var status))
        {
            Directory.CreateDirectory(path, PrivateDirectoryMode);
            IpcLog.DirectoryCreated(logger, path);
            // Re-read rather than trust the create: someone may have won a race to create it first.
            if (!UnixNative.TryGetStatus(path, out status))
                throw new IOException($"Directory '{path}' vanished right after it was created.");
        }
        CheckPrivate(path, status);
    }

    /// <summary>
    /// Records that this host bound <see cref="SocketPath"/> (only then does <see cref="Dispose"/> remove it) and sets
    /// the socket file to 0600 (defence in depth; the 0700 directory already keeps others out).
    /// </summary>
    public void SocketBound()
    {
        if (!OperatingSystem.IsLinux()) throw NotLinux();
        _socketBound = true;
        File.SetUnixFileMode(SocketPath, PrivateFileMode);
    }

    /// <summary>
    /// Removes the socket (if this host bound it) and lock files and the bus directory (if nothing else is in it),
    /// then releases the lock.
    /// </summary>
    public void Dispose()
    {
        if (_lock is null) return;
        // Unlink while still holding the lock, so a new host that wins the lock next never sees our files. A socket
        // this host did not bind is someone else's and stays.
        if (_socketBound) TryDelete(SocketPath);
        TryDelete(LockPath);
        ReleaseLockOnly();
        try
        {
            Directory.Delete(BusDirectory, recursive: false);
        }
        catch (IOException ex)
        {
            // Not empty: a new host already moved in, or someone left a file there; it is not ours to remove.
            IpcLog.BusDirectoryKept(_logger, BusDirectory, ex.Message);
        }
    }

    private static void CheckPrivate(string path, UnixFileStatus status)
    {
        if (status.Type != UnixFileType.Directory)
            throw new IpcBusSetupException(
                IpcSetupFailure.InsecureDirectory,
                $"'{path}' is a {status.Type}, not a directory; refusing to use it for a bus.",
                path);
        var me = UnixNative.EffectiveUserId;
        if (status.OwnerId != me)
            throw new IpcBusSetupException(
                IpcSetupFailure.InsecureDirectory,
                $"Directory '{path}' is owned by uid {status.OwnerId}, not by this user (uid {me}); refusing to use it for a bus.",
                path);
        if ((status.Permissions & GroupOrOtherBits) != 0)
            throw new IpcBusSetupException(
                IpcSetupFailure.InsecureDirectory,
                $"Directory '{path}' has mode {Octal(status.Permissions)}, which lets other users in; it must be 0700 (chmod 700 it, or remove it).",
                path);
    }

    private static PlatformNotSupportedException NotLinux() => new("The Unix-socket bus runs on Linux only.");

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8);

    private static FileStream OpenLock(string lockPath)
    {
        if (!OperatingSystem.IsLinux()) throw NotLinux();
        try
        {
            var stream = new FileStream(lockPath, new FileStreamOptions
            {
                Mode = FileMode.OpenOrCreate,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                UnixCreateMode = PrivateFileMode,
            });
            // The holder's pid, for a human wondering who hosts the bus; the lock itself is the flock.
            stream.SetLength(0);
            stream.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            stream.Flush();
            return stream;
        }
        catch (IOException ex) when (ex is not DirectoryNotFoundException and not FileNotFoundException)
        {
            throw new IpcBusSetupException(
                IpcSetupFailure.AlreadyHosted,
                $"The bus at '{Path.GetDirectoryName(lockPath)}' is already hosted by a live process (it holds '{LockFileName}'); join it instead.",
                lockPath,
                ex);
        }
    }

    private async Task RemoveStaleSocketAsync(CancellationToken cancellationToken)
    {
        if (!UnixNative.TryGetStatus(SocketPath, out var status)) return;
        if (status.Type != UnixFileType.Socket)
            throw new IpcBusSetupException(
                IpcSetupFailure.NotASocket,
                $"'{SocketPath}' exists and is a {status.Type}, not a socket; remove it by hand if it is not needed.",
                SocketPath);

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await probe.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            // Nobody listens: the previous host died without cleaning up. Its lock died with it, so the file is ours.
            File.Delete(SocketPath);
            IpcLog.StaleSocketRemoved(_logger, SocketPath);
            return;
        }
        catch (SocketException ex)
        {
            throw new IpcBusSetupException(
                IpcSetupFailure.AlreadyHosted,
                $"'{SocketPath}' exists and could not be probed ({ex.SocketErrorCode}); another host may be alive, so it is left alone.",
                SocketPath,
                ex);
        }
        throw new IpcBusSetupException(
            IpcSetupFailure.AlreadyHosted,
            $"The bus socket '{SocketPath}' is answered by a live host that holds no lock; join it instead.",
            SocketPath);
    }

    private void ReleaseLockOnly()
    {
        _lock?.Dispose();
        _lock = null;
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException ex)
        {
            IpcLog.CleanupFailed(_logger, path, ex.Message);
        }
        catch (UnauthorizedAccessException ex)
        {
            IpcLog.CleanupFailed(_logger, path, ex.Message);
        }
    }
}
