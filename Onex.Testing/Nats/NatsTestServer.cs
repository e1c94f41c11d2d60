using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;
using Onex.Testing.Registry;
using Onex.Testing.Resources;
using Onex.Transports.Registry;

namespace Onex.Testing.Nats;

/// <summary>
/// A real <c>nats-server</c> with JetStream for tests: loopback only, on a port leased from the test registry, with a
/// temporary store directory. <see cref="RestartAsync"/> stops it gracefully and starts it again on the same port
/// and store. Disposing kills it, deletes the directory and releases the port; the kit disposes it after the test
/// that started it (or at the end of the run, when started from <c>[OneTimeSetUp]</c>) if nobody did before.
/// </summary>
public sealed class NatsTestServer : IAsyncDisposable
{
    /// <summary>
    /// The payload limit written into the server config unless asked otherwise: 8 MB, because nats-server's own
    /// default (1 MB) is too small for 1 MiB events plus their envelope.
    /// </summary>
    public const int DefaultMaxPayloadBytes = 8 * 1024 * 1024;

    private const int SigTerm = 15;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);
    private static readonly ConcurrentDictionary<NatsTestServer, byte> Running = new();

    private readonly string _executable;
    private readonly string _root;
    private readonly string _configFile;
    private readonly PortLeaseSet _lease;
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;
    private int _disposed;

    static NatsTestServer()
    {
        // A crashed or aborted test run must not leave servers behind.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var server in Running.Keys) server.KillNow();
        };
    }

    private NatsTestServer(string executable, PortLeaseSet lease, int maxPayloadBytes)
    {
        _executable = executable;
        _lease = lease;
        Port = lease.Ports[0];
        _root = Directory.CreateTempSubdirectory("onex-nats-").FullName;
        StoreDirectory = Path.Combine(_root, "store");
        Directory.CreateDirectory(StoreDirectory);
        _configFile = Path.Combine(_root, "nats.conf");
        File.WriteAllText(_configFile, $"max_payload: {maxPayloadBytes}\n");
    }

    /// <summary>The client port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The URL to connect to.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>JetStream's store directory (kept across <see cref="RestartAsync"/>).</summary>
    public string StoreDirectory { get; }

    /// <summary>True while the server process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>
    /// Starts a server on a leased port and returns once it accepts connections with JetStream ready. It is disposed
    /// after the running test (or the run) unless disposed earlier.
    /// </summary>
    /// <param name="maxPayloadBytes">The server's <c>max_payload</c>.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="InvalidOperationException">nats-server is not installed, or it did not start (with its output).</exception>
    public static async Task<NatsTestServer> StartAsync(int maxPayloadBytes = DefaultMaxPayloadBytes, CancellationToken cancellationToken = default)
    {
        var (scope, purpose) = TestResources.Current();
        var server = await StartUntrackedAsync(maxPayloadBytes, $"nats-server for {purpose}", cancellationToken).ConfigureAwait(false);
        return await TestResources.AddAsync(scope, server).ConfigureAwait(false);
    }

    /// <summary>Starts a server that no test scope owns (the process-wide one of <see cref="OnexTestEnvironment"/>).</summary>
    internal static async Task<NatsTestServer> StartUntrackedAsync(int maxPayloadBytes, string purpose, CancellationToken cancellationToken)
    {
        var executable = FindExecutable();
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        var lease = await registry.LeasePortAsync(new LeaseRequestOptions { Purpose = purpose, Protocol = Onex.Protocol.PortProtocols.Tcp }, cancellationToken)
            .ConfigureAwait(false);
        var server = new NatsTestServer(executable, lease, maxPayloadBytes);
        try
        {
            await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit; the store and the port are kept.</summary>
    public async Task StopAsync()
    {
        var process = _process;
        if (process is null || process.HasExited) return;
        if (Kill(process.Id, SigTerm) != 0) process.Kill();
        using var timeout = new CancellationTokenSource(StopTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().ConfigureAwait(false);
        }
        Running.TryRemove(this, out _);
    }

    /// <summary>Stops the server and starts it again on the same port and store directory.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts the server again after <see cref="StopAsync"/> (same port and store).</summary>
    public Task StartAgainAsync(CancellationToken cancellationToken = default) => StartProcessAsync(cancellationToken);

    /// <summary>Kills the server, deletes its directory and releases its port.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        KillNow();
        if (_process is { } process)
        {
            await process.WaitForExitAsync().ConfigureAwait(false);
            process.Dispose();
        }
        Running.TryRemove(this, out _);
        await _lease.DisposeAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException ex)
        {
            TestContext.Progress.WriteLine($"onex-testing: could not delete the nats-server directory {_root}: {ex.Message}");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"nats-server {Url}";

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _output.Clear();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var start = new ProcessStartInfo(_executable)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-a", "127.0.0.1", "-p", Port.ToString(), "-js", "-sd", StoreDirectory, "-c", _configFile })
            start.ArgumentList.Add(arg);

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        DataReceivedEventHandler onLine = (sender, e) =>
        {
            if (e.Data is null) return;
            _output.Enqueue(e.Data);
            if (_output.Count > 200) _output.TryDequeue(out _);
            if (e.Data.Contains("Server is ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("nats-server exited during start-up."));
        process.Start();
        _process?.Dispose();
        _process = process;
        Running.TryAdd(this, 0);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            await ready.Task.WaitAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
            await ConfirmAcceptingAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or SocketException)
        {
            KillNow();
            throw new InvalidOperationException(
                $"nats-server on port {Port} did not become ready within {StartTimeout.TotalSeconds:0}s ({ex.Message}). Its output:\n"
                + string.Join('\n', _output), ex);
        }
    }

    /// <summary>"Server is ready" is logged once the listener is up; one connection that reads INFO confirms it.</summary>
    private async Task ConfirmAcceptingAsync(CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", Port, cancellationToken).ConfigureAwait(false);
        var buffer = new byte[4];
        var stream = client.GetStream();
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken).AsTask().WaitAsync(StartTimeout, cancellationToken)
                .ConfigureAwait(false);
            if (n == 0) throw new InvalidOperationException("nats-server closed the connection before sending INFO.");
            read += n;
        }
        if (Encoding.ASCII.GetString(buffer) != "INFO")
            throw new InvalidOperationException($"Port {Port} does not speak the NATS protocol.");
    }

    private void KillNow()
    {
        try
        {
            if (_process is { HasExited: false } process) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited between the check and the kill.
        }
    }

    private static string FindExecutable()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        var candidates = path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
            .Select(dir => Path.Combine(dir, "nats-server"));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                "nats-server was not found on PATH or in /usr/sbin: run scripts/install-deps.sh (installs the Debian package nats-server with JetStream), " +
                "or set ONEX_NATS_URL to a running server.");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
