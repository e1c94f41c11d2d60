using System.Diagnostics;
using System.Text;

namespace Onex.Tests.Infrastructure;

/// <summary>A child process run to completion within a time limit (killed, by its pid, when it overruns), output captured.</summary>
internal static class ChildProcess
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public string Describe(string what) => $"{what} exited {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
    }

    public static string Dotnet =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan limit,
        string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        process.StandardInput.Close();
        var output = new StringBuilder();
        var error = new StringBuilder();
        var stdout = Task.Run(async () => { while (await process.StandardOutput.ReadLineAsync() is { } line) lock (output) output.AppendLine(line); });
        var stderr = Task.Run(async () => { while (await process.StandardError.ReadLineAsync() is { } line) lock (error) error.AppendLine(line); });
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish within {limit.TotalSeconds} s\nstdout:\n{output}\nstderr:\n{error}");
        }
        await Task.WhenAll(stdout, stderr);
        return new Result(process.ExitCode, output.ToString(), error.ToString());
    }
}
