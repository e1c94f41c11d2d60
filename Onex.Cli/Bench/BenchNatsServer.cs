using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Onex.Errors;

namespace Onex.Cli.Bench;

/// <summary>
/// A private <c>nats-server -js</c> for one bench run: loopback only, on a port leased from the registry, with its
/// store in a temporary directory and <c>max_payload</c> raised to 8 MB (nats-server's 1 MB default is below the
/// largest event a bus accepts). Disposing kills it and deletes the directory.
/// </summary>
internal sealed class BenchNatsServer : IAsyncDisposable
{
    private const int MaxPayloadBytes = 8 * 1024 * 1024;
    private const int MaxAttempts = 3;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly LeasedPort _port;
    private readonly string _directory;
    private readonly Process _process;
    private readonly TextWriter _diagnostics;

    private BenchNatsServer(LeasedPort port, string directory, Process process, TextWriter diagnostics)
    {
        _port = port;
        _directory = directory;
        _process = process;
        _diagnostics = diagnostics;
    }

    /// <summary>The URL clients connect to.</summary>
    public string Url => $"nats://127.0.0.1:{_port.Port}";

    /// <summary>Where the port came from (for the report).</summary>
    public string PortSource => _port.Source;

    /// <summary>
    /// Starts the server on <paramref name="port"/> (taking ownership of the lease) and returns once it accepts
    /// connections. A port found taken is reported to the registry and the replacement tried, up to three times.
    /// </summary>
    /// <exception cref="NotFoundException">nats-server is not installed.</exception>
    /// <exception cref="UnavailableException">It did not start; the message carries its last output lines.</exception>
    public static async Task<BenchNatsServer> StartAsync(LeasedPort port, TextWriter diagnostics, CancellationToken cancellationToken)
    {
        var directory = Directory.CreateTempSubdirectory("onex-bench-nats-").FullName;
        try
        {
            var executable = FindExecutable();
            var configFile = Path.Combine(directory, "nats.conf");
            await File.WriteAllTextAsync(configFile, $"max_payload: {MaxPayloadBytes}\n", cancellationToken).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                var (process, output) = await StartProcessAsync(executable, port.Port, directory, configFile, cancellationToken).ConfigureAwait(false);
                if (process is not null) return new BenchNatsServer(port, directory, process, diagnostics);
                if (attempt < MaxAttempts && output.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    await port.ReportConflictAsync("nats-server could not bind it", cancellationToken).ConfigureAwait(false);
                    continue;
                }
                throw new UnavailableException(
                    $"nats-server did not start on 127.0.0.1:{port.Port} within {StartTimeout.TotalSeconds:0} s. Its output:\n{output}",
                    new Dictionary<string, string> { ["port"] = port.Port.ToString() });
            }
        }
        catch
        {
            DeleteDirectory(directory, diagnostics);
            await port.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Finds nats-server on PATH or in the sbin directories a Debian package installs to.</summary>
    /// <exception cref="NotFoundException">It is not installed.</exception>
    public static string FindExecutable()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
                   .Concat(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
                   .Select(dir => Path.Combine(dir, "nats-server"))
                   .FirstOrDefault(File.Exists)
               ?? throw new NotFoundException(
                   "nats-server is not installed (not on PATH or in /usr/sbin): run scripts/install-deps.sh, or pass --nats-url of a server with JetStream.");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited between the check and the kill.
        }
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
        DeleteDirectory(_directory, _diagnostics);
        await _port.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Starts the process and waits until it is ready; on failure returns no process and its output.</summary>
    private static async Task<(Process? Process, string Output)> StartProcessAsync(
        string executable, int port, string directory, string configFile, CancellationToken cancellationToken)
    {
        var store = Path.Combine(directory, "store");
        Directory.CreateDirectory(store);
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-js", "-a", "127.0.0.1", "-p", port.ToString(), "-sd", store, "-c", configFile })
            start.ArgumentList.Add(arg);

        var output = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is null) return;
            output.Enqueue(e.Data);
            if (output.Count > 50) output.TryDequeue(out string? _);
            if (e.Data.Contains("Server is ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("nats-server exited during start-up."));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
            await ConfirmAcceptingAsync(port, cancellationToken).ConfigureAwait(false);
            return (process, "");
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or SocketException or IOException or OperationCanceledException)
        {
            try
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            process.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            return (null, string.Join('\n', output));
        }
    }

    /// <summary>"Server is ready" is logged once the listener is up; one connection that reads INFO confirms it.</summary>
    private static async Task ConfirmAcceptingAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port, cancellationToken).ConfigureAwait(false);
        var stream = client.GetStream();
        var buffer = new byte[4];
        await stream.ReadExactlyAsync(buffer, cancellationToken).AsTask().WaitAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
        if (Encoding.ASCII.GetString(buffer) != "INFO")
            throw new InvalidOperationException($"Port {port} does not speak the NATS protocol.");
    }

    private static void DeleteDirectory(string directory, TextWriter diagnostics)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            diagnostics.WriteLine($"onex: could not delete {directory}: {ex.Message}");
        }
    }
}
