using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// The auth file in force and its reloading: read at start (a bad file stops the start), re-read on SIGHUP and
/// whenever the file changes. A reload that fails keeps the configuration in force and logs why; state (leases,
/// registrations) is never touched by a reload. <see cref="Current"/> may be read from any thread.
/// </summary>
public sealed partial class RegistryAuth : IDisposable
{
    private readonly ILogger _logger;
    private readonly Lock _reloading = new();
    private AuthConfiguration _current;
    private FileSystemWatcher? _watcher;
    private PosixSignalRegistration? _hangup;
    private long _generation;

    private RegistryAuth(string path, AuthConfiguration initial, ILogger logger)
    {
        Path = System.IO.Path.GetFullPath(path);
        _current = initial;
        _logger = logger;
    }

    /// <summary>The auth file's full path.</summary>
    public string Path { get; }

    /// <summary>The configuration in force.</summary>
    public AuthConfiguration Current => Volatile.Read(ref _current);

    /// <summary>How many reloads succeeded (0 after the start).</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Raised after every reload attempt (true: the new file is in force; false: refused, the old one stays).</summary>
    public event Action<bool>? Reloaded;

    /// <summary>Reads the file (throws <see cref="AuthFileException"/> when it cannot be used) and starts watching it and SIGHUP.</summary>
    public static RegistryAuth Start(string path, ILogger logger, bool handleHangup = true)
    {
        var initial = AuthConfiguration.Load(path);
        var auth = new RegistryAuth(path, initial, logger);
        LogLoaded(logger, auth.Path, initial.File.Tenants.Count, initial.TokenCount);
        auth.Watch(handleHangup);
        return auth;
    }

    /// <summary>Re-reads the file now; returns whether the new one is in force.</summary>
    public bool Reload(string reason)
    {
        bool ok;
        lock (_reloading)
        {
            try
            {
                var next = AuthConfiguration.Load(Path);
                Volatile.Write(ref _current, next);
                Interlocked.Increment(ref _generation);
                LogReloaded(_logger, Path, reason, next.File.Tenants.Count, next.TokenCount);
                ok = true;
            }
            catch (AuthFileException ex)
            {
                LogRefused(_logger, Path, reason, ex.Message);
                ok = false;
            }
        }
        Reloaded?.Invoke(ok);
        return ok;
    }

    private void Watch(bool handleHangup)
    {
        var directory = System.IO.Path.GetDirectoryName(Path)!;
        var name = System.IO.Path.GetFileName(Path);
        try
        {
            _watcher = new FileSystemWatcher(directory, name)
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            // Editors and `onex auth add-token` replace the file by renaming a new one over it: Renamed and Created count.
            _watcher.Changed += (_, _) => Reload("file changed");
            _watcher.Created += (_, _) => Reload("file replaced");
            _watcher.Renamed += (_, e) =>
            {
                if (string.Equals(e.FullPath, Path, StringComparison.Ordinal)) Reload("file replaced");
            };
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException)
        {
            LogNoWatch(_logger, Path, ex.Message);
        }
        if (handleHangup && !OperatingSystem.IsWindows())
        {
            // A node started with SIGHUP ignored (nohup, some supervisors) inherits that disposition, and .NET then
            // delivers no SIGHUP to a registration: the reload the docs promise would silently never happen. A daemon
            // that reloads on SIGHUP takes the signal back, as Consul and nginx do.
            RestoreDefaultHangup();
            _hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true; // SIGHUP reloads; it does not stop the node
                Reload("SIGHUP");
            });
        }
    }

    private static void RestoreDefaultHangup()
    {
        const int SigHup = 1;
        try
        {
            _ = SetSignalHandler(SigHup, IntPtr.Zero); // SIG_DFL: the registration below installs the real handler
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc signal(): the inherited disposition stays; the file watcher still reloads.
        }
    }

    [DllImport("libc", EntryPoint = "signal")]
    private static extern IntPtr SetSignalHandler(int signal, IntPtr handler);

    /// <summary>Stops watching the file and SIGHUP.</summary>
    public void Dispose()
    {
        _hangup?.Dispose();
        _watcher?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Access control on: auth file {Path}, {Tenants} tenant(s), {Tokens} token(s); requests without a valid token are refused")]
    private static partial void LogLoaded(ILogger logger, string path, int tenants, int tokens);

    [LoggerMessage(Level = LogLevel.Information, Message = "Auth file {Path} reloaded ({Reason}): {Tenants} tenant(s), {Tokens} token(s)")]
    private static partial void LogReloaded(ILogger logger, string path, string reason, int tenants, int tokens);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Auth file {Path} not reloaded ({Reason}); the previous one stays in force: {Problem}")]
    private static partial void LogRefused(ILogger logger, string path, string reason, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Auth file {Path} cannot be watched for changes ({Problem}); reload it with SIGHUP")]
    private static partial void LogNoWatch(ILogger logger, string path, string problem);
}
