using Onex.Errors;

namespace Onex.Transports.Ipc;

/// <summary>
/// Hosting or joining a Unix-socket bus was refused before any event moved; <see cref="Failure"/> says why and
/// <see cref="OnexException.Details"/> carries the <c>path</c> concerned. The code is
/// <see cref="ErrorCodes.InvalidArgument"/>: the bus name, root directory or socket path given cannot be used as is.
/// </summary>
public sealed class IpcBusSetupException(IpcSetupFailure failure, string message, string path, Exception? innerException = null)
    : OnexException(ErrorCodes.InvalidArgument, message, new Dictionary<string, string> { ["path"] = path, ["failure"] = failure.ToString() }, innerException)
{
    /// <summary>Why the setup was refused.</summary>
    public IpcSetupFailure Failure { get; } = failure;
}

/// <summary>Reasons an <see cref="IpcBusSetupException"/> is thrown.</summary>
public enum IpcSetupFailure
{
    /// <summary>The root or bus directory exists but is not a directory owned by this user with mode 0700 (no group/other bits).</summary>
    InsecureDirectory,

    /// <summary>Another live participant hosts this bus (it holds <c>bus.lock</c> or answers on <c>bus.sock</c>): join it instead.</summary>
    AlreadyHosted,

    /// <summary>Something other than a socket sits at the socket path; it is left alone.</summary>
    NotASocket,

    /// <summary>The socket path is longer than the 107 bytes a Unix socket address holds; choose a shorter root directory.</summary>
    SocketPathTooLong,
}
