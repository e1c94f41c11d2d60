using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Errors;

namespace Onex.Testing.Nats;

/// <summary>
/// A local <c>nats-server -js</c> on 127.0.0.1, for tests and benchmarks (the Debian package, installed by
/// <c>scripts/install-deps.sh</c>). <see cref="StartAsync"/> completes once the server said "Server is ready" and
/// answers the NATS greeting on its port; disposing kills it. The store directory and config file belong to the caller.
/// </summary>
/// <remarks>
/// Public in the test kit (<c>NatsServerProcess.Public.cs</c>); <c>onex bench bus</c> compiles this same file as an
/// internal type, so the tool does not ship the test kit.
/// </remarks>
sealed partial class NatsServerProcess : IAsyncDisposable
{
    /// <summary>How long a start may take before it counts as failed.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private const int SigTerm = 15;
    private const int SigStop = 19; // Linux numbering, as SIGTERM above
    private const int SigCont = 18;
    private const int KeptOutputLines = 100;

    private readonly Process _process;

    private NatsServerProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    /// <summary>The port it listens on (loopback only).</summary>
    public int Port { get; }

    /// <summary>True until the process has exited.</summary>
    public bool IsRunning => !_process.HasExited;

    /// <summary>
    /// The nats-server executable: on PATH or in the usual sbin/bin folders. Throws <see cref="NotFoundException"/>
    /// saying how to install it, followed by <paramref name="alternative"/> (e.g. "or pass --nats-url").
    /// </summary>
    public static string FindExecutable(string alternative)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
                   .Concat(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
                   .Select(dir => Path.Combine(dir, "nats-server"))
                   .FirstOrDefault(File.Exists)
               ?? throw new NotFoundException(
                   $"nats-server is not installed (not on PATH or in /usr/sbin): run scripts/install-deps.sh (the Debian package nats-server), {alternative}.");
    }

    /// <summary>
    /// Starts <paramref name="executable"/> with JetStream on 127.0.0.1:<paramref name="port"/>. Throws
    /// <see cref="UnavailableException"/> carrying the server's last output lines when it exits or is not ready within
    /// <see cref="StartTimeout"/> (for example "address already in use").
    /// </summary>
    public static async Task<NatsServerProcess> StartAsync(
        string executable, int port, string storeDirectory, string configFile, CancellationToken cancellationToken = default)
    {
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-js", "-a", "127.0.0.1", "-p", port.ToString(), "-sd", storeDirectory, "-c", configFile })
            start.ArgumentList.Add(arg);

        var output = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is null) return;
            output.Enqueue(e.Data);
            if (output.Count > KeptOutputLines) output.TryDequeue(out string? _);
            if (e.Data.Contains("Server is ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("nats-server exited during start-up."));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new NatsServerProcess(process, port);
        try
        {
            await ready.Task.WaitAsync(StartTimeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            await ConfirmAcceptingAsync(port, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or SocketException or IOException or OperationCanceledException)
        {
            await server.DisposeAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new UnavailableException(
                $"nats-server did not start on 127.0.0.1:{port} within {StartTimeout.TotalSeconds:0} s ({ex.Message}). Its output:\n{string.Join('\n', output)}",
                new Dictionary<string, string> { ["port"] = port.ToString() }, ex);
        }
    }

    /// <summary>Stops it the way a service manager would (SIGTERM), killing it after <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited) return;
        if (Kill(_process.Id, SigTerm) != 0) KillNow();
        using var limit = new CancellationTokenSource(timeout, TimeProvider.System);
        try
        {
            await _process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillNow();
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Freezes it (SIGSTOP): its connections stay open and nothing is answered, as a hung server. <see cref="Resume"/> ends it.</summary>
    /// <exception cref="InvalidOperationException">The signal could not be sent (the process is gone), or the process ended instead of stopping.</exception>
    public void Pause()
    {
        // A pause must never silently do nothing (a test would then pass or fail for the wrong reason): the signal goes
        // to the child's pid unconditionally, and its failure is an error.
        if (Kill(_process.Id, SigStop) != 0)
            throw new InvalidOperationException($"nats-server (pid {_process.Id}) could not be paused: kill(SIGSTOP) failed with errno {Marshal.GetLastPInvokeError()}.");
        // kill() returns once the signal is queued; the process stops when its threads next run. Wait for that as a
        // parent can: waitid for a stop (or an exit), leaving the state to be reported again (WNOWAIT), so the runtime's
        // own reaping of the child is unaffected.
        var info = new byte[SigInfoSize];
        if (WaitId(PPid, _process.Id, info, WStopped | WExited | WNoWait) != 0)
            throw new InvalidOperationException($"nats-server (pid {_process.Id}) was sent SIGSTOP but cannot be waited for: waitid failed with errno {Marshal.GetLastPInvokeError()}.");
        var code = BitConverter.ToInt32(info, SigInfoCodeOffset);
        if (code != ClStopped)
            throw new InvalidOperationException($"nats-server (pid {_process.Id}) was sent SIGSTOP and ended instead of stopping (si_code {code}).");
    }

    /// <summary>True while the kernel shows the process stopped (SIGSTOP), from <c>/proc/PID/stat</c>.</summary>
    public bool IsPaused => ProcessState() is 'T' or 't';

    // The state letter of /proc/PID/stat (after the parenthesised command name); '?' when it cannot be read.
    private char ProcessState()
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            var end = stat.LastIndexOf(')');
            return end >= 0 && end + 2 < stat.Length ? stat[end + 2] : '?';
        }
        catch (IOException)
        {
            return '?';
        }
    }

    /// <summary>Lets a paused server run again (SIGCONT).</summary>
    public void Resume()
    {
        if (!_process.HasExited) Kill(_process.Id, SigCont);
    }

    /// <summary>Kills it (SIGKILL, as <c>kill -9</c>) and waits for it to exit.</summary>
    public async Task KillAsync()
    {
        KillNow();
        await _process.WaitForExitAsync().ConfigureAwait(false);
    }

    /// <summary>Kills it at once without waiting (for process-exit hooks).</summary>
    public void KillNow()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited between the check and the kill.
        }
    }

    /// <summary>Kills it and waits for it to exit.</summary>
    public async ValueTask DisposeAsync()
    {
        KillNow();
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"nats-server nats://127.0.0.1:{Port}";

    private static async Task ConfirmAcceptingAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port, cancellationToken).ConfigureAwait(false);
        var buffer = new byte[4];
        await client.GetStream().ReadExactlyAsync(buffer, cancellationToken).AsTask().WaitAsync(StartTimeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        if (Encoding.ASCII.GetString(buffer) != "INFO")
            throw new InvalidOperationException($"Port {port} does not speak the NATS protocol.");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    // waitid(2), Linux values: idtype P_PID, options WSTOPPED | WEXITED | WNOWAIT; siginfo_t is 128 bytes, si_code at 8.
    private const int PPid = 1;
    private const int WStopped = 2;
    private const int WExited = 4;
    private const int WNoWait = 0x01000000;
    private const int SigInfoSize = 128;
    private const int SigInfoCodeOffset = 8;
    private const int ClStopped = 5;

    [DllImport("libc", EntryPoint = "waitid", SetLastError = true)]
    private static extern int WaitId(int idType, int id, byte[] info, int options);
}
