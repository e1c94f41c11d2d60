using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>
/// The registry process with its SQLite store under faults an operator meets: kill -9 and restart on the same
/// endpoints, and a stall (SIGSTOP, as a long GC pause or an overloaded machine would cause).
/// </summary>
[NonParallelizable] // a stopped or killed registry stalls on purpose; keep the machine's other tests out of its timing
public class CrashSafetyTests
{
    private const int SigKill = 9;
    private const int SigStop = 19;
    private const int SigCont = 18;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private sealed class Registry : IDisposable
    {
        private readonly string[] _args;
        private NodeProcess _node;

        private Registry(string[] args, NodeProcess node, string router)
        {
            _args = args;
            _node = node;
            Router = router;
        }

        public string Router { get; }
        public NodeProcess Node => _node;

        public static async Task<(Registry Registry, TemporaryDirectory Data)> StartAsync(params string[] extra)
        {
            var ports = await TestPorts.LeaseAsync(2);
            var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
            var data = new TemporaryDirectory();
            string[] args = ["--endpoint", $"tcp://127.0.0.1:{ports[0]}", "--pub-endpoint", $"tcp://127.0.0.1:{ports[1]}", "--port-range", pool,
                "--data-dir", data.Path, "--log-level", "Warning", .. extra];
            var node = NodeProcess.Start(args);
            await node.WaitForLineAsync("registry: store", Wait);
            return (new Registry(args, node, $"tcp://127.0.0.1:{ports[0]}"), data);
        }

        /// <summary>kill -9, then the same command line again; returns once it serves.</summary>
        public async Task KillAndRestartAsync()
        {
            _node.Signal(SigKill);
            await _node.WaitForExitAsync(Wait);
            _node.Dispose();
            _node = NodeProcess.Start(_args);
            await _node.WaitForLineAsync("registry: store", Wait);
        }

        public void Dispose()
        {
            _node.KillIfRunning();
            _node.Dispose();
        }
    }

    [Test]
    public async Task A_registry_killed_and_restarted_grants_none_of_the_ports_its_live_holders_hold()
    {
        var (registry, data) = await Registry.StartAsync();
        using var _ = data;
        using (registry)
        {
            var held = new List<PortLease>();
            for (var holder = 0; holder < 4; holder++)
            {
                using var dealer = new TestDealer(registry.Router);
                held.AddRange(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = $"holder-{holder}", Count = 4, TtlMs = 120_000, Protocol = PortProtocols.Tcp }).Leases);
            }

            var doubleGrants = 0;
            for (var round = 0; round < 3; round++)
            {
                await registry.KillAndRestartAsync();
                using var newcomer = new TestDealer(registry.Router);
                var granted = newcomer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = $"newcomer-{round}", Count = 16, TtlMs = 120_000, Protocol = PortProtocols.Udp }).Leases;
                doubleGrants += granted.Count(l => held.Any(h => h.Port == l.Port));
                using var holders = new TestDealer(registry.Router);
                foreach (var lease in held)
                {
                    var renewed = holders.Call<LeaseRenewal, PortLease>(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
                    Assert.That(renewed.Port, Is.EqualTo(lease.Port), $"lease {lease.LeaseId} changed its port across restart {round}");
                }
                held.AddRange(granted);
            }
            Assert.That(doubleGrants, Is.Zero, "ports held by live leases were granted again after a restart");
        }
    }

    [Test]
    public async Task A_paused_registry_loses_no_lease_whose_holder_renewed_on_time()
    {
        var (registry, data) = await Registry.StartAsync("--min-ttl", "1s");
        using var _ = data;
        using (registry)
        {
            using var dealer = new TestDealer(registry.Router);
            var leases = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "holder", Count = 20, TtlMs = 3_000 }).Leases;

            // The holder renews every second whatever happens, as a client library would; replies are read as they come.
            using var renewer = new Renewer(registry.Router, leases);
            var running = Task.Run(renewer.Run);
            await renewer.Rounds(2).WaitAsync(Wait);

            registry.Node.Signal(SigStop);
            var resumeAt = renewer.RoundsDone + 8; // about 8 s stopped, counted in the holder's own renewal rounds
            await renewer.Rounds(resumeAt).WaitAsync(Wait);
            registry.Node.Signal(SigCont);
            await renewer.Rounds(resumeAt + 3).WaitAsync(Wait);
            renewer.Stop();
            await running.WaitAsync(Wait);

            Assert.That(renewer.Errors, Is.Empty, "renewals sent on time while the registry was stopped were refused");
            Assert.That(renewer.Unanswered, Is.Zero, "renewals went unanswered after the registry resumed");
            var snapshot = dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
            Assert.That(snapshot.Leases.Select(l => l.LeaseId), Is.EquivalentTo(leases.Select(l => l.LeaseId)), "leases were lost to the pause");
        }
    }

    /// <summary>Sends one renewal per lease every second from its own thread and counts what comes back.</summary>
    private sealed class Renewer : IDisposable
    {
        private readonly DealerSocket _socket = new();
        private readonly IReadOnlyList<PortLease> _leases;
        private readonly CancellationTokenSource _stop = new();
        private readonly Lock _gate = new();
        private readonly List<(int Round, TaskCompletionSource Done)> _waiters = [];
        private int _next;
        private int _outstanding;

        public Renewer(string router, IReadOnlyList<PortLease> leases)
        {
            _leases = leases;
            _socket.Options.Linger = TimeSpan.Zero;
            _socket.Connect(router);
        }

        public List<string> Errors { get; } = [];
        public int Unanswered => Volatile.Read(ref _outstanding);
        public int RoundsDone { get; private set; }

        public Task Rounds(int count)
        {
            lock (_gate)
            {
                if (RoundsDone >= count) return Task.CompletedTask;
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add((count, done));
                return done.Task;
            }
        }

        public void Stop() => _stop.Cancel();

        public void Run()
        {
            var nextRound = TimeProvider.System.GetUtcNow();
            while (true)
            {
                if (!_stop.IsCancellationRequested && TimeProvider.System.GetUtcNow() >= nextRound)
                {
                    foreach (var lease in _leases)
                    {
                        _socket.SendFrame(RegistryCodec.Encode($"renew-{++_next}", "pause-test",
                            new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken }));
                        _outstanding++;
                    }
                    nextRound = nextRound.AddSeconds(1);
                    lock (_gate)
                    {
                        RoundsDone++;
                        foreach (var waiter in _waiters.Where(w => w.Round <= RoundsDone).ToList())
                        {
                            waiter.Done.TrySetResult();
                            _waiters.Remove(waiter);
                        }
                    }
                }
                var stopping = _stop.IsCancellationRequested;
                if (stopping && _outstanding == 0) return;
                if (!_socket.TryReceiveFrameBytes(stopping ? Wait : TimeSpan.FromMilliseconds(50), out var frame))
                {
                    if (stopping) return; // what is still outstanding stays counted as unanswered
                    continue;
                }
                _outstanding--;
                var reply = TestDealer.DecodeReply(frame);
                if (reply.MessageType == MessageTypes.Of<Error>())
                {
                    var error = reply.BodyAs<Error>();
                    Errors.Add($"{reply.RequestId}: {error.Code} {error.Message}");
                }
            }
        }

        public void Dispose()
        {
            _socket.Dispose();
            _stop.Dispose();
        }
    }
}
