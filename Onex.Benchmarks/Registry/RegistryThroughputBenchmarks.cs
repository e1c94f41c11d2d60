using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Lease-then-release pairs per second with many requests in flight on one DEALER, over loopback TCP, against an
/// in-process registry node; beside a raw ROUTER echo server driven the same way (the floor). One operation is one
/// pair: a <see cref="PortRequest"/> (default protocol <c>both</c>: the full free check) and, when its grant
/// arrives, the <see cref="LeaseRelease"/> of that lease. <see cref="Window"/> pairs are in flight at any time.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class RegistryThroughputBenchmarks
{
    private const int PairsPerInvoke = 20_000;
    private const string NodeId = "bench-node";

    private RegistryNodeHost _registry = null!;
    private RawEchoServer _echo = null!;
    private BenchDealer _registryClient = null!;
    private BenchDealer _echoClient = null!;

    /// <summary>Requests in flight on the DEALER.</summary>
    [Params(256, 1000)]
    public int Window { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _registry = BenchRegistry.Start();
        _echo = new RawEchoServer();
        _registryClient = new BenchDealer(_registry.RouterEndpoint);
        _echoClient = new BenchDealer(_echo.Endpoint);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _registryClient.Dispose();
        _echoClient.Dispose();
        _echo.Dispose();
        _registry.DisposeAsync().AsTask().GetAwaiter().GetResult();
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
        for (; started < Window && started < PairsPerInvoke; started++) _echoClient.Send(Request());
        while (completed < PairsPerInvoke)
        {
            var reply = _echoClient.Receive();
            if (reply.MessageType == nameof(PortRequest))
            {
                var echoed = reply.BodyAs<PortRequest>();
                _echoClient.Send(new LeaseRelease { LeaseId = "L-echo", NodeId = echoed.NodeId, FencingToken = 1 });
                continue;
            }
            completed++;
            if (started < PairsPerInvoke)
            {
                _echoClient.Send(Request());
                started++;
            }
        }
    }

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public void LeaseReleasePairs()
    {
        var started = 0;
        var completed = 0;
        for (; started < Window && started < PairsPerInvoke; started++) _registryClient.Send(Request());
        while (completed < PairsPerInvoke)
        {
            var reply = _registryClient.Receive();
            switch (reply.MessageType)
            {
                case nameof(PortGrant):
                    var lease = reply.BodyAs<PortGrant>().Leases[0];
                    _registryClient.Send(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
                    break;
                case nameof(Ack):
                    completed++;
                    if (started < PairsPerInvoke)
                    {
                        _registryClient.Send(Request());
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
