using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>The registry node as its own process, started the way an operator would start it.</summary>
public class RegistryProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Test]
    public async Task The_node_process_serves_and_exits_zero_on_sigterm_after_a_stopping_heartbeat()
    {
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString(); // a pool no other test's registry grants from
        using var node = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--heartbeat-interval", "100ms", "--port-range", pool);
        try
        {
            var ready = await node.WaitForLineAsync("registry: router", Wait);
            Assert.That(ready, Is.EqualTo($"registry: router {router}"));
            using var subscriber = new TestSubscriber(pub, ChangeTypes.HeartbeatTopic);
            subscriber.WaitForHeartbeat(Wait);
            using var dealer = new TestDealer(router);
            Assert.That(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));

            node.Terminate();

            var last = subscriber.WaitForHeartbeat(Wait, hb => hb.Stopping);
            Assert.That(last.Sequence, Is.EqualTo(1), "the stopping heartbeat should carry the last sequence");
            var exitCode = await node.WaitForExitAsync(Wait);
            Assert.That(exitCode, Is.Zero, $"the node did not stop cleanly; stderr:\n{node.Errors}");
        }
        finally
        {
            node.KillIfRunning();
        }
    }

    [Test]
    public async Task A_second_node_process_on_endpoints_in_use_exits_non_zero_naming_the_endpoint()
    {
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString(); // a pool no other test's registry grants from
        using var first = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool);
        try
        {
            await first.WaitForLineAsync("registry: router", Wait);
            using var second = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool);
            try
            {
                var exitCode = await second.WaitForExitAsync(Wait);
                Assert.That(exitCode, Is.Not.Zero, "a second node started on endpoints in use");
                Assert.That(second.Errors, Does.Contain(router), "the error should name the endpoint in use");
            }
            finally
            {
                second.KillIfRunning();
            }
        }
        finally
        {
            first.Terminate();
            await first.WaitForExitAsync(Wait);
            first.KillIfRunning();
        }
    }

    /// <summary>A child <c>dotnet Onex.RegistryNode.dll</c> with its output captured line by line.</summary>
    private sealed class NodeProcess : IDisposable
    {
        private const int SigTerm = 15;

        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly StringBuilder _errors = new();
        private readonly Lock _gate = new();
        private TaskCompletionSource _lineArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

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
                lock (_gate) _errors.AppendLine(e.Data);
            };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public string Errors
        {
            get { lock (_gate) return _errors.ToString(); }
        }

        public static NodeProcess Start(params string[] args)
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "Onex.RegistryNode.dll");
            Assert.That(File.Exists(dll), Is.True, $"the registry node is not built next to the tests: {dll}");
            var info = new ProcessStartInfo(DotnetHost())
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add(dll);
            foreach (var arg in args) info.ArgumentList.Add(arg);
            return new NodeProcess(Process.Start(info) ?? throw new InvalidOperationException("could not start the node process"));
        }

        /// <summary>Waits for a stdout line starting with <paramref name="prefix"/>.</summary>
        public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            while (true)
            {
                Task arrived;
                lock (_gate)
                {
                    var line = _lines.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
                    if (line is not null) return line;
                    arrived = _lineArrived.Task;
                }
                if (_process.HasExited) Assert.Fail($"the node exited ({_process.ExitCode}) before printing '{prefix}'; stderr:\n{Errors}");
                try
                {
                    await Task.WhenAny(arrived, _process.WaitForExitAsync(cts.Token)).WaitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"the node printed no '{prefix}' line within {timeout.TotalSeconds} s; stderr:\n{Errors}");
                }
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

        public void KillIfRunning()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }

        public void Dispose() => _process.Dispose();

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
}
