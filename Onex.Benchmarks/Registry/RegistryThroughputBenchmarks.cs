using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Lease-then-release pairs per second with many requests in flight on one DEALER, over loopback TCP, against an
/// in-process registry node; beside a raw ROUTER echo server driven the same way (the floor). One operation is one
/// pair: a <see cref="PortRequest"/> (default protocol <c>both</c>: the full free check) and, when its grant
/// arrives, the <see cref="LeaseRelease"/> of that lease. <see cref="Window"/> pairs are in flight at any time.
/// <see cref="LeaseReleasePairsCheckingInline"/> is the same against a node that checks every port inline on its
/// request thread (no checks ahead of demand), to show what the background verifier adds.
/// <see cref="LeaseReleasePairsCrashSafe"/> and <see cref="LeaseReleasePairsPowerSafe"/> run against the SQLite store
/// (in a fresh temporary directory) at its two durability levels; the others use the memory store.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class RegistryThroughputBenchmarks
{
    private const int PairsPerInvoke = 20_000;
    private const string NodeId = "bench-node";

    private RegistryNodeHost? _registry;
    private RawEchoServer? _echo;
    private BenchDealer _client = null!;

    /// <summary>
    /// Requests in flight on the DEALER: 64 (as registry-vs-etcd) and 256. Earlier reports also ran 1,000; the node now
    /// queues at most 1,000 replies for one peer (PROTOCOL.md section 14), so a window of 1,000 is at that bound and
    /// stalls instead of measuring.
    /// </summary>
    [Params(64, 256)]
    public int Window { get; set; }

    [GlobalSetup(Target = nameof(RawEchoPairs))]
    public void SetupEcho()
    {
        _echo = new RawEchoServer();
        _client = new BenchDealer(_echo.Endpoint);
    }

    [GlobalSetup(Target = nameof(LeaseReleasePairs))]
    public void SetupRegistry() => StartRegistry(BenchRegistry.Options);

    [GlobalSetup(Target = nameof(LeaseReleasePairsCheckingInline))]
    public void SetupInlineRegistry() => StartRegistry(BenchRegistry.InlineCheckOptions);

    [GlobalSetup(Target = nameof(LeaseReleasePairsCrashSafe))]
    public void SetupCrashSafeRegistry() => StartRegistry(Durable(StoreDurability.Process));

    [GlobalSetup(Target = nameof(LeaseReleasePairsPowerSafe))]
    public void SetupPowerSafeRegistry() => StartRegistry(Durable(StoreDurability.Power));

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _echo?.Dispose();
        _registry?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (_dataDirectory is not null) Directory.Delete(_dataDirectory, recursive: true);
    }

    private string? _dataDirectory;

    private RegistryNodeOptions Durable(StoreDurability durability)
    {
        _dataDirectory = Directory.CreateTempSubdirectory("onex-bench-store-").FullName;
        return BenchRegistry.Options with { Store = new RegistryStoreOptions { DataDirectory = _dataDirectory, Durability = durability } };
    }

    /// <summary>
    /// The same two round trips per pair against the echo server: the client encodes the same envelopes and decodes
    /// every reply envelope and the first reply's body, so client work matches and the difference is the registry's.
    /// </summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = PairsPerInvoke)]
    public void RawEchoPairs()
    {
        var started = 0;
        var completed = 0;
        for (; started < Window && started < PairsPerInvoke; started++) _client.Send(Request());
        while (completed < PairsPerInvoke)
        {
            var reply = _client.Receive();
            if (reply.MessageType == nameof(PortRequest))
            {
                var echoed = reply.BodyAs<PortRequest>();
                _client.Send(new LeaseRelease { LeaseId = "L-echo", NodeId = echoed.NodeId, FencingToken = 1 });
                continue;
            }
            completed++;
            if (started < PairsPerInvoke)
            {
                _client.Send(Request());
                started++;
            }
        }
    }

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public void LeaseReleasePairs() => RunPairs();

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public void LeaseReleasePairsCheckingInline() => RunPairs();

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public void LeaseReleasePairsCrashSafe() => RunPairs();

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public void LeaseReleasePairsPowerSafe() => RunPairs();

    private void StartRegistry(RegistryNodeOptions options)
    {
        _registry = BenchRegistry.Start(options);
        _client = new BenchDealer(_registry.RouterEndpoint);
    }

    private void RunPairs()
    {
        var started = 0;
        var completed = 0;
        for (; started < Window && started < PairsPerInvoke; started++) _client.Send(Request());
        while (completed < PairsPerInvoke)
        {
            var reply = _client.Receive();
            switch (reply.MessageType)
            {
                case nameof(PortGrant):
                    var lease = reply.BodyAs<PortGrant>().Leases[0];
                    _client.Send(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
                    break;
                case nameof(Ack):
                    completed++;
                    if (started < PairsPerInvoke)
                    {
                        _client.Send(Request());
                        started++;
                    }
                    break;
                default:
                    throw BenchDealer.Unexpected(reply, "PortGrant or Ack");
            }
        }
    }

    private static PortRequest Request() => new() { NodeId = NodeId, Purpose = "throughput" };
}
