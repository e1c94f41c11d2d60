using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.Testing.Nats;
using Onex.Tests.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A registry taking in a large batch of other hosts' entries (a new host loading the catalogue, or a host's
/// re-publication) applies them in bounded batches on its thread and answers its own requests in between.
/// </summary>
[NonParallelizable]
public class ClusterLoadingTests
{
    private const string OtherHost = "host-far";

    [Test]
    public async Task A_local_request_is_answered_between_batches_of_remote_entries_each_of_which_is_its_own_change()
    {
        const int entries = 3_000;
        await using var nats = await NatsTestServer.StartAsync();
        var bucket = Bucket();
        await using var host = await StartHostAsync(Options(nats.Url, bucket, "host-near") with { Replicas = 1 }, 0);
        var inbox = host.Cluster!.Inbox;
        var sequenceBefore = await host.InvokeAsync(state => state.Journal.Sequence);
        var batchesBefore = inbox.Batches;

        // The registry thread is held while the whole batch arrives, so every entry waits in the inbox at once.
        using var hold = new ManualResetEventSlim();
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Post(_ =>
        {
            holding.SetResult();
            hold.Wait(TimeSpan.FromSeconds(60)); // bounded: released below, or the test has failed anyway
        });
        try
        {
            await BoundedAsync(holding.Task, "the registry thread to be held");
            await WriteOtherHostsToolsAsync(nats.Url, bucket, entries);
            await WaitUntilAsync(() => inbox.Pending == entries, $"all {entries} entries to wait in the inbox (at {inbox.Pending})", TimeSpan.FromSeconds(60));
            // A request queued behind them in the registry loop, as one over NATS is.
            var request = new IntrospectionRequest { Include = [IntrospectionSections.Tools], NamePrefix = "far.", Scope = IntrospectionScopes.Cluster };
            var reply = host.DispatchAsync(RegistryCodec.Encode("load-probe-1", "load-probe", request));
            hold.Set();

            await BoundedAsync(reply, "the introspection queued behind the entries");
            var answered = RegistryCodec.DecodeBody<IntrospectionResponse>(TestDealer.DecodeReply(await reply));
            Assert.That(answered.Tools!.Count, Is.LessThanOrEqualTo(ClusterInbox.BatchSize),
                $"answered after at most one batch of the {entries} entries queued before it, not after all of them");
            Assert.That(answered.Cluster!.Stale, Is.False, "the view stays current while live entries are applied");
        }
        finally
        {
            hold.Set();
        }

        await BoundedAsync(host.Cluster.CatchUpAsync(), "the registry to apply the whole batch");
        var tools = await host.InvokeAsync(state => host.Cluster.Catalog.Tools(state).Count(t => t.RegistryHost == OtherHost));
        var sequenceAfter = await host.InvokeAsync(state => state.Journal.Sequence);
        Assert.That(tools, Is.EqualTo(entries), "every remote entry is in the view");
        Assert.That(sequenceAfter - sequenceBefore, Is.EqualTo(entries), "each remote entry is one change with a sequence number of its own");
        Assert.That(inbox.Batches - batchesBefore, Is.GreaterThanOrEqualTo(entries / ClusterInbox.BatchSize), "applied in bounded batches");
    }

    /// <summary>Writes <paramref name="count"/> tools of another host straight into the bucket (with a heartbeat that keeps it healthy).</summary>
    private static async Task WriteOtherHostsToolsAsync(string url, string bucket, int count)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = url });
        var store = await connection.CreateKeyValueStoreContext().GetStoreAsync(bucket);
        var heartbeat = new ClusterHeartbeat { Host = OtherHost, Epoch = "test", IntervalMs = (long)TimeSpan.FromHours(1).TotalMilliseconds };
        await store.PutAsync(ClusterKeys.Heartbeat(OtherHost), RegistryCodec.SerializeBody(heartbeat));
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var tool = new ToolContractRecord
            {
                Name = $"far.tool.{i:D5}", Version = "1.0.0", InputSchema = InputSchema, OutputSchema = OutputSchema,
                NodeId = "far-node", Fingerprint = $"far-{i:D5}", RegistryHost = OtherHost,
            };
            await store.PutAsync(ClusterKeys.Entry("default", OtherHost, ClusterKinds.Tool, tool.Name + "@" + tool.Version), RegistryCodec.SerializeBody(tool), cancellationToken: ct);
        });
    }
}
