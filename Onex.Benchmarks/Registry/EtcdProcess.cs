using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using dotnet_etcd;
using Etcdserverpb;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// A single-member etcd (the Debian package's <c>etcd</c> binary) in a child process: client and peer URLs on
/// OS-chosen 127.0.0.1 ports, a fresh temporary data directory, stopped by pid (SIGTERM, then a kill) and its
/// directory deleted on dispose.
/// </summary>
internal sealed class EtcdProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _output;

    private EtcdProcess(Process process, StringBuilder output, string dataDirectory, string clientUrl, EtcdClient client)
    {
        _process = process;
        _output = output;
        DataDirectory = dataDirectory;
        ClientUrl = clientUrl;
        Client = client;
    }

    public int Id => _process.Id;

    public string DataDirectory { get; }

    public string ClientUrl { get; }

    /// <summary>A gRPC client connected to this member.</summary>
    public EtcdClient Client { get; }

    /// <summary>The etcd binary on PATH, or null when etcd is not installed.</summary>
    public static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, "etcd")).FirstOrDefault(File.Exists);

    /// <summary>etcd's version line (<c>etcd Version: 3.4.23</c>).</summary>
    public static string Version(string binary)
    {
        using var process = Process.Start(new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, UseShellExecute = false })!;
        var line = process.StandardOutput.ReadLine() ?? "";
        process.WaitForExit();
        return line.Trim();
    }

    /// <summary>Starts etcd with <paramref name="extraArguments"/> and returns once it answers a status request.</summary>
    public static async Task<EtcdProcess> StartAsync(string binary, IEnumerable<string> extraArguments, CancellationToken cancellationToken)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("onex-bench-etcd-").FullName;
        var clientUrl = $"http://127.0.0.1:{FreeLoopbackPort()}";
        var peerUrl = $"http://127.0.0.1:{FreeLoopbackPort()}";
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--name", "bench", "--data-dir", dataDirectory, "--logger", "zap", "--log-level", "warn",
                     "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
                     "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
                     "--initial-cluster", $"bench={peerUrl}", "--initial-cluster-state", "new",
                 }.Concat(extraArguments))
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start etcd.");
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var client = new EtcdClient(clientUrl);
        var etcd = new EtcdProcess(process, output, dataDirectory, clientUrl, client);
        try
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException($"etcd exited with code {process.ExitCode}: {etcd.Output}");
                try
                {
                    await client.StatusAsync(new StatusRequest(), deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(1), cancellationToken: cancellationToken);
                    // A status answer comes before the member has elected itself leader; a lease needs the leader.
                    var probe = await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 10 }, deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(2), cancellationToken: cancellationToken);
                    await client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = probe.ID }, cancellationToken: cancellationToken);
                    return etcd;
                }
                catch (Exception) when (clock.Elapsed < StartTimeout && !cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(100, cancellationToken); // polling a child process we cannot await
                }
            }
        }
        catch
        {
            etcd.Dispose();
            throw;
        }
    }

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public void Dispose()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, 15);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(10))) _process.Kill();
        }
        _process.WaitForExit();
        _process.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"registry-vs-etcd: could not delete {DataDirectory}: {ex.Message}");
        }
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null) return;
        lock (output)
        {
            if (output.Length < 64 * 1024) output.AppendLine(line);
        }
    }

    // The kernel picks a free loopback port; etcd binds it right after (a port taken in between fails the start loudly).
    private static int FreeLoopbackPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
