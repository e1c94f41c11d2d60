using Onex.Errors;
using Onex.Testing.Nats;

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

    private readonly LeasedPort _port;
    private readonly string _directory;
    private readonly NatsServerProcess _process;
    private readonly TextWriter _diagnostics;

    private BenchNatsServer(LeasedPort port, string directory, NatsServerProcess process, TextWriter diagnostics)
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
            var store = Directory.CreateDirectory(Path.Combine(directory, "store")).FullName;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var process = await NatsServerProcess.StartAsync(executable, port.Port, store, configFile, cancellationToken).ConfigureAwait(false);
                    return new BenchNatsServer(port, directory, process, diagnostics);
                }
                catch (UnavailableException ex) when (attempt < MaxAttempts && ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    await port.ReportConflictAsync("nats-server could not bind it", cancellationToken).ConfigureAwait(false);
                }
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
    public static string FindExecutable() => NatsServerProcess.FindExecutable("or pass --nats-url of a server with JetStream");

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync().ConfigureAwait(false);
        DeleteDirectory(_directory, _diagnostics);
        await _port.DisposeAsync().ConfigureAwait(false);
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
