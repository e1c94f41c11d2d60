using System.Diagnostics;
using System.Text.Json;

namespace Onex.Tests.Infrastructure;

/// <summary>
/// The <c>onex</c> CLI running as a real child process (<c>dotnet onex.dll ...</c> from the test output folder),
/// read line by line. Disposing kills it if it is still running.
/// </summary>
internal sealed class OnexProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;

    private OnexProcess(Process process)
    {
        _process = process;
        _stderr = process.StandardError.ReadToEndAsync();
    }

    /// <summary>
    /// How to run <c>dotnet onex.dll ARGS</c> from the test output folder (the runtime the tests run on, when the
    /// test host names it), with stdin, stdout and stderr redirected.
    /// </summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "onex.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return start;
    }

    public static OnexProcess Start(IEnumerable<string> args) => Start(args, null);

    /// <summary>Starts <c>onex ARGS</c> with <paramref name="environment"/> added to the child's environment.</summary>
    public static OnexProcess Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment)
    {
        var start = StartInfo(args);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        return new OnexProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start onex"));
    }

    /// <summary>The child's process id.</summary>
    public int Id => _process.Id;

    /// <summary>The next stdout line as JSON; fails naming <paramref name="what"/> and the child's stderr on timeout or exit.</summary>
    public async Task<JsonElement> ReadJsonLineAsync(string what, TimeSpan timeout) =>
        JsonDocument.Parse(await ReadLineAsync(what, timeout)).RootElement.Clone();

    /// <summary>Closes the child's stdin (commands that hold something until end of input then let go and exit).</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>The next stdout line; fails naming <paramref name="what"/> and the child's stderr on timeout or exit.</summary>
    public async Task<string> ReadLineAsync(string what, TimeSpan timeout)
    {
        string? line;
        try
        {
            line = await _process.StandardOutput.ReadLineAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"Timed out after {timeout.TotalSeconds:0.#}s waiting for {what} from onex (pid {_process.Id}).");
            throw;
        }
        if (line is null)
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
            Assert.Fail($"onex exited ({_process.ExitCode}) before {what}; stderr: {await _stderr}");
        }
        return line!;
    }

    /// <summary>Waits for the exit code; fails with the child's stderr on timeout.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"onex (pid {_process.Id}) did not exit within {timeout.TotalSeconds:0.#}s.");
        }
        return _process.ExitCode;
    }

    public Task<string> StandardErrorAsync() => _stderr;

    /// <summary>
    /// Awaits <paramref name="task"/>, failing with the child's exit code and stderr if the child exits first: a
    /// wait for something only a running child can cause then says why the child stopped, not just that time ran out.
    /// </summary>
    public async Task<T> WhileRunningAsync<T>(Task<T> task, string what)
    {
        var exited = _process.WaitForExitAsync();
        if (await Task.WhenAny(task, exited) == exited && !task.IsCompleted)
            Assert.Fail($"onex exited ({_process.ExitCode}) while the test waited for {what}; stderr: {await _stderr}");
        return await task;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
