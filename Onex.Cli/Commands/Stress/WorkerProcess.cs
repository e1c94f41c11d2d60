using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Onex.Cli.Commands;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands.Stress;

/// <summary>A worker: <c>onex ports stress-worker ...</c> as a child process, its stdin and stdout as line streams.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _errors = new();
    private readonly SemaphoreSlim _stdin = new(1, 1);

    private WorkerProcess(int index, Process process)
    {
        Index = index;
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_errors) if (_errors.Length < 4096) _errors.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
    }

    public int Index { get; }

    public string Errors
    {
        get { lock (_errors) return _errors.ToString(); }
    }

    public static WorkerProcess Start(string approach, int index, StressSettings settings, RegistryTarget target)
    {
        var start = OnexStartInfo();
        foreach (var arg in new[]
                 {
                     "ports", "stress-worker", "--approach", approach, "--worker", index.ToString(), "--ports", settings.Ports.ToString(),
                     "--rounds", settings.Rounds.ToString(), "--hold", $"{settings.HoldMs}ms",
                     "--registry", target.Router, "--registry-pub", target.Pub,
                 })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        return new WorkerProcess(index, process);
    }

    /// <summary>
    /// This same <c>onex</c>: the apphost when that is what runs, else <c>dotnet onex.dll</c> with the running dotnet
    /// (or <c>DOTNET_HOST_PATH</c>, as test hosts set it), so it works as an installed tool and in-process under a test.
    /// </summary>
    private static ProcessStartInfo OnexStartInfo()
    {
        var processPath = Environment.ProcessPath;
        var name = processPath is null ? "" : Path.GetFileNameWithoutExtension(processPath);
        ProcessStartInfo start;
        if (name == "onex")
        {
            start = new ProcessStartInfo(processPath!);
        }
        else
        {
            var dotnet = name == "dotnet" ? processPath!
                : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
            start = new ProcessStartInfo(dotnet);
            start.ArgumentList.Add(typeof(StressCommand).Assembly.Location);
        }
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        return start;
    }

    public async Task<string?> ReadLineAsync(CancellationToken cancellationToken) =>
        await _process.StandardOutput.ReadLineAsync(cancellationToken).ConfigureAwait(false);

    public async Task SendAsync(string line, CancellationToken cancellationToken)
    {
        await _stdin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _process.StandardInput.WriteLineAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
            await _process.StandardInput.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _stdin.Release();
        }
    }

    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>Kills the worker if it still runs (time limit, Ctrl-C, a failed run) and waits for it.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // exited between the check and the kill
        }
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
        _stdin.Dispose();
    }
}
