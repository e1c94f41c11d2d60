using System.Diagnostics;
using dotnet_etcd;
using Etcdserverpb;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Benchmarks.Registry;

/// <summary>Pairs completed in one measurement and the wall time they took.</summary>
internal readonly record struct PairCount(long Pairs, TimeSpan Elapsed)
{
    public double PerSecond => Pairs / Elapsed.TotalSeconds;
}

/// <summary>
/// The measured loops of <c>registry-vs-etcd</c>: lease-then-release pairs with a fixed number in flight, until
/// <c>duration</c> has passed or <c>maxPairs</c> pairs have started, whichever comes first; the pairs in flight then
/// finish and count. A pair's release is sent only once its grant has arrived.
/// </summary>
internal static class LeasePairLoops
{
    /// <summary>
    /// Raw protocol: one DEALER on this thread, <see cref="PortRequest"/> then <see cref="LeaseRelease"/> envelopes,
    /// pipelined with <paramref name="inFlight"/> pairs outstanding (as <see cref="RegistryThroughputBenchmarks"/>).
    /// </summary>
    public static PairCount Raw(BenchDealer dealer, string nodeId, int inFlight, TimeSpan duration, long maxPairs)
    {
        var clock = Stopwatch.StartNew();
        long started = 0;
        long completed = 0;
        var outstanding = 0;
        for (; outstanding < inFlight && started < maxPairs; outstanding++, started++) dealer.Send(Request(nodeId));
        while (outstanding > 0)
        {
            var reply = dealer.Receive();
            switch (reply.MessageType)
            {
                case nameof(PortGrant):
                    var lease = reply.BodyAs<PortGrant>().Leases[0];
                    dealer.Send(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = lease.NodeId, FencingToken = lease.FencingToken });
                    break;
                case nameof(Ack):
                    completed++;
                    if (started < maxPairs && clock.Elapsed < duration)
                    {
                        dealer.Send(Request(nodeId));
                        started++;
                    }
                    else
                    {
                        outstanding--;
                    }
                    break;
                default:
                    throw BenchDealer.Unexpected(reply, "PortGrant or Ack");
            }
        }
        return new PairCount(completed, clock.Elapsed);
    }

    /// <summary>
    /// Through <see cref="RegistryClient"/>, as an application leases one port and gives it back:
    /// <see cref="RegistryClient.LeasePortAsync"/>, then disposing the <see cref="PortLeaseSet"/>;
    /// <paramref name="inFlight"/> such loops run concurrently.
    /// </summary>
    public static Task<PairCount> ClientAsync(RegistryClient client, LeaseRequestOptions options, int inFlight, TimeSpan duration, long maxPairs) =>
        ConcurrentAsync(inFlight, duration, maxPairs, async () =>
        {
            var set = await client.LeasePortAsync(options).ConfigureAwait(false);
            await set.DisposeAsync().ConfigureAwait(false);
        });

    /// <summary>etcd: <c>LeaseGrant</c> then <c>LeaseRevoke</c> of that lease over one gRPC channel, <paramref name="inFlight"/> loops concurrently.</summary>
    public static Task<PairCount> EtcdAsync(EtcdClient etcd, long ttlSeconds, int inFlight, TimeSpan duration, long maxPairs) =>
        ConcurrentAsync(inFlight, duration, maxPairs, async () =>
        {
            var grant = await etcd.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlSeconds }).ConfigureAwait(false);
            await etcd.LeaseRevokeAsync(new LeaseRevokeRequest { ID = grant.ID }).ConfigureAwait(false);
        });

    private static async Task<PairCount> ConcurrentAsync(int inFlight, TimeSpan duration, long maxPairs, Func<Task> pair)
    {
        var clock = Stopwatch.StartNew();
        long started = 0;
        long completed = 0;
        async Task LoopAsync()
        {
            while (clock.Elapsed < duration && Interlocked.Increment(ref started) <= maxPairs)
            {
                await pair().ConfigureAwait(false);
                Interlocked.Increment(ref completed);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(_ => Task.Run(LoopAsync))).ConfigureAwait(false);
        return new PairCount(Interlocked.Read(ref completed), clock.Elapsed);
    }

    private static PortRequest Request(string nodeId) => new() { NodeId = nodeId, Purpose = "registry-vs-etcd" };
}
