using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Onex.Tests.Registry;

/// <summary>A child <c>dotnet onex-registry.dll</c> with its output captured line by line.</summary>
internal sealed class NodeProcess : IDisposable
{
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly StringBuilder _errors = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource _lineArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _errorArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private NodeProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_gate)
            {
                _lines.Add(e.Data);
                _lineArrived.TrySetResult();
                _lineArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_gate)
            {
                _errors.AppendLine(e.Data);
                _errorArrived.TrySetResult();
                _errorArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Errors
    {
        get { lock (_gate) return _errors.ToString(); }
    }

    public static NodeProcess Start(params string[] args) => Start(args, workingDirectory: null, environment: null);

    /// <summary>Starts the node in <paramref name="workingDirectory"/> (where it reads appsettings.json) with extra environment variables.</summary>
    public static NodeProcess Start(string[] args, string? workingDirectory, IReadOnlyDictionary<string, string?>? environment)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "onex-registry.dll");
        Assert.That(File.Exists(dll), Is.True, $"the registry node is not built next to the tests: {dll}");
        return StartDll(dll, args, workingDirectory, environment);
    }

    /// <summary>
    /// Starts <c>dotnet <paramref name="dll"/></c> (any program, e.g. a sample) with its output captured line by line;
    /// <paramref name="hangupIgnored"/> starts it with SIGHUP ignored, as <c>nohup</c> does (through <c>/bin/sh</c>, which execs the host).
    /// </summary>
    public static NodeProcess StartDll(string dll, string[] args, string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null,
        bool httpNone = true, bool hangupIgnored = false)
    {
        Assert.That(File.Exists(dll), Is.True, $"not built: {dll}");
        var info = new ProcessStartInfo(hangupIgnored ? "/bin/sh" : DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        }
        if (hangupIgnored)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(HangupIgnoredScript);
            info.ArgumentList.Add(DotnetHost());
        }
        info.ArgumentList.Add(dll);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        // No HTTP endpoint unless the test names one: the default port (5752) would collide between parallel runs.
        if (httpNone && !args.Contains("--http"))
        {
            info.ArgumentList.Add("--http");
            info.ArgumentList.Add("none");
        }
        return new NodeProcess(Process.Start(info) ?? throw new InvalidOperationException("could not start the node process"));
    }

    /// <summary>Waits for a stdout line starting with <paramref name="prefix"/>.</summary>
    public Task<string> WaitForLineAsync(string prefix, TimeSpan timeout) =>
        WaitForLineAsync(l => l.StartsWith(prefix, StringComparison.Ordinal), timeout, $"'{prefix}' line");

    /// <summary>Waits for the first stdout line that <paramref name="match"/> accepts; <paramref name="what"/> names it in the failure.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, string what)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task arrived;
            lock (_gate)
            {
                var line = _lines.FirstOrDefault(match);
                if (line is not null) return line;
                arrived = _lineArrived.Task;
            }
            await AwaitOutputAsync(arrived, cts, $"{what} on stdout", timeout);
        }
    }

    /// <summary>Waits until stderr contains <paramref name="text"/>.</summary>
    public async Task WaitForErrorTextAsync(string text, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task arrived;
            lock (_gate)
            {
                if (_errors.ToString().Contains(text, StringComparison.Ordinal)) return;
                arrived = _errorArrived.Task;
            }
            await AwaitOutputAsync(arrived, cts, $"'{text}' on stderr", timeout);
        }
    }

    private async Task AwaitOutputAsync(Task arrived, CancellationTokenSource cts, string what, TimeSpan timeout)
    {
        if (_process.HasExited) Assert.Fail($"the node exited ({_process.ExitCode}) before printing {what}; stderr:\n{Errors}");
        try
        {
            await Task.WhenAny(arrived, _process.WaitForExitAsync(cts.Token)).WaitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the node printed no {what} within {timeout.TotalSeconds} s; stdout:\n{Output}\nstderr:\n{Errors}");
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the node did not exit within {timeout.TotalSeconds} s; stderr:\n{Errors}");
        }
        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM, as a service manager would (Process.Kill sends SIGKILL).</summary>
    public void Terminate()
    {
        if (_process.HasExited) return;
        if (Kill(_process.Id, SigTerm) != 0)
            Assert.Fail($"kill(SIGTERM) failed with errno {Marshal.GetLastWin32Error()}");
    }

    /// <summary>Sends <paramref name="signal"/> (SIGSTOP 19, SIGCONT 18, SIGKILL 9) to the node.</summary>
    public void Signal(int signal)
    {
        if (Kill(_process.Id, signal) != 0)
            Assert.Fail($"kill({signal}) failed with errno {Marshal.GetLastWin32Error()}");
    }

    /// <summary>Closes the child's stdin (samples that run until their input ends).</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Every stdout line so far.</summary>
    public string Output
    {
        get { lock (_gate) return string.Join('\n', _lines); }
    }

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    public void KillIfRunning()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
    }

    public void Dispose() => _process.Dispose();

    /// <summary>The <c>sh -c</c> script that ignores SIGHUP and execs its arguments (the same pid), as <c>nohup</c> does.</summary>
    public const string HangupIgnoredScript = "trap '' HUP; exec \"$0\" \"$@\"";

    private static string DotnetHost()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk)) return fromSdk;
        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
