using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Http;

/// <summary>
/// A real Prometheus server (Debian's <c>prometheus</c>, installed by scripts/install-deps.sh) with a generated config
/// scraping one target every second, its own data directory, on a leased loopback port; stopped by pid.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly TemporaryDirectory _directory;
    private readonly StringBuilder _log = new();

    private PrometheusServer(Process process, TemporaryDirectory directory, string url)
    {
        _process = process;
        _directory = directory;
        Url = url;
        Api = HttpTestClient.Create(url);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    public string Url { get; }

    /// <summary>A client of Prometheus's HTTP API.</summary>
    public HttpClient Api { get; }

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    /// <summary>Starts Prometheus on <paramref name="port"/> scraping <paramref name="target"/> (<c>host:port</c>) as job <c>onex-registry</c>.</summary>
    public static PrometheusServer Start(int port, string target)
    {
        var binary = FindBinary();
        Assert.That(binary, Is.Not.Null, "prometheus is not installed; scripts/install-deps.sh installs Debian's package");
        var directory = new TemporaryDirectory();
        var config = Path.Combine(directory.Path, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: onex-registry
                static_configs:
                  - targets: ['{target}']
            """);
        var info = new ProcessStartInfo(binary!)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory.Path, "data")}",
                     $"--web.listen-address=127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}", "--log.level=warn",
                 })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start prometheus");
        return new PrometheusServer(process, directory, $"http://127.0.0.1:{port}");
    }

    /// <summary>
    /// Runs an instant query until it returns one sample whose value satisfies <paramref name="done"/> (Prometheus
    /// scrapes on its own schedule: there is nothing to await but its next scrape). Returns that value.
    /// </summary>
    public async Task<double> QueryUntilAsync(string query, Func<double, bool> done, string what)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var last = "";
        while (!cts.IsCancellationRequested)
        {
            if (_process.HasExited) Assert.Fail($"prometheus exited ({_process.ExitCode}):\n{Log}");
            try
            {
                last = await Api.GetStringAsync($"/api/v1/query?query={Uri.EscapeDataString(query)}", cts.Token);
                using var json = JsonDocument.Parse(last);
                var result = json.RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() == 1)
                {
                    var value = double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                    if (done(value)) return value;
                }
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message; // not listening yet
            }
            await Task.Delay(100, cts.Token).ContinueWith(_ => { });
        }
        Assert.Fail($"{what}: Prometheus did not report it within 60 s; last answer to {query}: {last}\nprometheus log:\n{Log}");
        return double.NaN;
    }

    public async ValueTask DisposeAsync()
    {
        Api.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _ = Kill(_process.Id, SigTerm);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                try
                {
                    await _process.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync();
                }
            }
        }
        finally
        {
            _process.Dispose();
            _directory.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_log)
            if (_log.Length < 64 * 1024) _log.AppendLine(line);
    }

    private static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':')
            .Select(dir => Path.Combine(dir, "prometheus")).FirstOrDefault(File.Exists);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
