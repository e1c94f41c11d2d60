using System.Diagnostics;
using System.Threading.Channels;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Tests.Ipc;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Tests.Buses;

/// <summary>
/// Issue 11, "Tests and numbers", for the Unix-socket and JetStream backends (the ZeroMQ one is in
/// <see cref="HostRestartTests"/>): a bus host child process killed with SIGKILL and started again through the registry
/// with its node id file; joined participants carry on by themselves, and what the outage cost is counted: events a
/// joined publisher sent, those received, those refused to the publisher (it was told), those counted lost. The
/// figures are printed for docs/BUSES.md.
/// </summary>
public class HostKillRestartFigureTests
{
    private static readonly TimeSpan StartLimit = HostDrill.StartLimit;

    [Test]
    public async Task Ipc_host_killed_and_restarted_through_the_registry_participants_reconnect_and_the_outage_is_reported()
    {
        using var runtimeDirectory = new IpcTestRoot();
        var figures = await RunAsync(BusKinds.Ipc, "ipc-kill", new Dictionary<string, string> { ["XDG_RUNTIME_DIR"] = runtimeDirectory.Path });
        Assert.Multiple(() =>
        {
            Assert.That(figures.SubscriberStates, Is.EqualTo(new[] { BusConnectionState.Disconnected, BusConnectionState.Connected }),
                "the subscriber was told of the outage and of the reconnect");
            Assert.That(figures.RefusedProbe, Is.True, "an event published while the host was down was refused to the publisher");
            Assert.That(figures.Received + figures.Refused + figures.CountedLost, Is.EqualTo(figures.Attempted),
                "every event the joined publisher attempted was received, refused to it, or counted lost at the subscriber: none lost silently");
        });
    }

    [Test]
    public async Task JetStream_host_killed_and_restarted_through_the_registry_costs_the_participants_nothing()
    {
        await using var server = await NatsServerFixture.StartAsync();
        var figures = await RunAsync(BusKinds.JetStream, Onex.Tests.JetStream.JetStreamTesting.UniqueBusName("js-kill"), new Dictionary<string, string> { ["ONEX_NATS_URL"] = server.Url });
        Assert.Multiple(() =>
        {
            Assert.That(figures.SubscriberStates, Is.Empty, "the participants talk to the NATS server, which never went away");
            Assert.That(figures.Refused, Is.Zero, "no publish was refused");
            Assert.That(figures.Received, Is.EqualTo(figures.Attempted), "every event of the joined publisher arrived");
        });
    }

    private sealed record Figures(
        int Attempted, int Refused, int Received, long CountedLost, bool RefusedProbe, TimeSpan Outage, BusConnectionState[] SubscriberStates);

    private static async Task<Figures> RunAsync(string backend, string name, IReadOnlyDictionary<string, string> environment)
    {
        await using var registry = await TestRegistry.StartAsync();
        using var directory = new TemporaryDirectory();
        string[] hostArgs =
        [
            "--registry", registry.Host.RouterEndpoint, "--registry-pub", registry.Host.PubEndpoint,
            "bus", "host", "--backend", backend, "--name", name, "--use-registry", "--node-id-file", Path.Combine(directory.Path, "node-id"),
            "--publish-topic", "host.tick", "--publish-interval", "5",
        ];

        var first = OnexProcess.Start(hostArgs, environment);
        HostDrill.Hosting firstHosting;
        try
        {
            firstHosting = HostDrill.Hosting.Of(await first.ReadJsonLineAsync("the first host's hosting line", StartLimit));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }

        await using var subscriberClient = await registry.ConnectAsync();
        await using var publisherClient = await registry.ConnectAsync();
        await using var subscriber = await HostDrill.JoinAsync(backend, name, subscriberClient);
        await using var publisher = await HostDrill.JoinAsync(backend, name, publisherClient);
        var states = HostDrill.StatesOf(subscriber);
        var publisherStates = HostDrill.StatesOf(publisher);
        await using var ticks = await subscriber.SubscribeAsync("host.>", new SubscriptionOptions { Capacity = 100_000 });
        await using var counted = await subscriber.SubscribeAsync("count.>", new SubscriptionOptions { Capacity = 100_000 });

        // A joined publisher sends numbered events all through the outage; a refused one is counted, not retried.
        using var stopPublishing = new CancellationTokenSource();
        var attempted = 0;
        var refused = 0;
        var lastAccepted = 0;
        var publishing = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(2));
            try
            {
                while (await timer.WaitForNextTickAsync(stopPublishing.Token))
                {
                    var number = ++attempted;
                    try
                    {
                        await publisher.PublishAsync(OnexEvent.Create("count.data", BitConverter.GetBytes(number)));
                        Volatile.Write(ref lastAccepted, number);
                    }
                    catch (UnavailableException)
                    {
                        refused++;
                    }
                }
            }
            catch (OperationCanceledException) when (stopPublishing.IsCancellationRequested)
            {
                // Done publishing.
            }
        });
        var received = new List<int>();
        var highest = 0;
        var lastReceived = Channel.CreateUnbounded<int>();
        var reading = Task.Run(async () =>
        {
            await foreach (var evt in counted)
            {
                var number = BitConverter.ToInt32(evt.Payload.Span);
                received.Add(number);
                Volatile.Write(ref highest, number);
                lastReceived.Writer.TryWrite(number);
            }
        });

        await HostDrill.ReadTicksUntilAsync(ticks, (n, _) => n >= 20, "20 ticks of the first host run");
        await HostDrill.ReadUntilAsync(lastReceived.Reader, n => n >= 20, "20 events of the joined publisher before the kill");
        var outage = Stopwatch.StartNew();
        Process.GetProcessById(first.Id).Kill(); // SIGKILL
        await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await first.DisposeAsync();

        // Where the participants depend on the host (Unix sockets), the publisher is told at once and refuses events.
        var refusedProbe = false;
        if (backend == BusKinds.Ipc)
        {
            var lost = await HostDrill.NextStateAsync(publisherStates, "the publisher's Disconnected notice after the kill");
            Assert.That(lost.State, Is.EqualTo(BusConnectionState.Disconnected), lost.Detail);
            try
            {
                await publisher.PublishAsync(OnexEvent.Create("probe.during", new byte[] { 1 }));
            }
            catch (UnavailableException)
            {
                refusedProbe = true;
            }
        }

        await using var second = OnexProcess.Start(hostArgs, environment);
        var secondHosting = HostDrill.Hosting.Of(await second.ReadJsonLineAsync("the restarted host's hosting line", StartLimit));
        Assert.Multiple(() =>
        {
            Assert.That(secondHosting.NodeId, Is.EqualTo(firstHosting.NodeId), "the node id file gives the restarted host the same node id");
            Assert.That(secondHosting.Endpoints, Is.EqualTo(firstHosting.Endpoints), "the restarted host serves the same endpoints");
        });
        await HostDrill.ReadTicksUntilAsync(ticks, (_, pid) => pid == second.Id, "a tick of the restarted host");
        outage.Stop();
        // The subscriber's connection notices up to here (before the second host stops): on Unix sockets up to its
        // reconnect, which may be announced just after the first new tick arrives.
        var stateChanges = backend == BusKinds.Ipc
            ? (await IpcHostMoveTests.UntilConnectedAtAsync(states, firstHosting.Endpoints[0]["unix://".Length..], "the subscriber")).Select(n => n.State).ToList()
            : [];
        while (states.Reader.TryRead(out var notice)) stateChanges.Add(notice.State);
        var record = (await subscriberClient.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = name }))
            .Buses!.Single(b => b.Name == name);
        Assert.That((record.NodeId, record.Endpoints), Is.EqualTo((firstHosting.NodeId, (IReadOnlyList<string>)firstHosting.Endpoints.ToArray())),
            "the registry lists the bus under the same node on the same endpoints");

        // Publishing goes on until an event sent after both participants are back arrives (the publisher may reconnect
        // after the subscriber), so the last accepted event is one that can arrive.
        if (backend == BusKinds.Ipc) await IpcHostMoveTests.UntilConnectedAtAsync(publisherStates, firstHosting.Endpoints[0]["unix://".Length..], "the publisher");
        var mark = Volatile.Read(ref attempted);
        await HostDrill.ReadUntilAsync(lastReceived.Reader, n => n > mark, $"an event published after both participants were back (after {mark})");
        await stopPublishing.CancelAsync();
        await publishing;
        var last = Volatile.Read(ref lastAccepted);
        // (It may be the event the wait above already read.)
        if (Volatile.Read(ref highest) < last)
            await HostDrill.ReadUntilAsync(lastReceived.Reader, n => n == last, $"the joined publisher's last accepted event ({last}) after the restart");
        second.CloseInput();
        Assert.That(await second.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(0), "the restarted host stops cleanly");
        await counted.DisposeAsync();
        await reading;

        // Every event the publisher did not have refused carries its number (Unix sockets, protocol version 2), so the
        // subscriber counts each one that did not arrive, including those the publisher itself counted as still queued
        // when its connection broke; only the subscriber's count is added. Drops the host reported for the tick
        // subscription (a tick is not a counted event) are taken out of the subscriber's Transport count.
        var publisherCounted = publisher.Health.DroppedCount(DropCause.Transport);
        var subscriberCounted = subscriber.Health.DroppedCount(DropCause.Transport) - ticks.DroppedCount;
        var countedLost = backend == BusKinds.Ipc ? subscriberCounted : publisherCounted + subscriberCounted;
        TestContext.Out.WriteLine(
            $"{backend} host kill -9 + restart: outage (kill to first new tick) {outage.Elapsed.TotalMilliseconds:0} ms; joined publisher attempted {attempted}, " +
            $"refused (UnavailableException) {refused}, received {received.Count}, counted lost at the subscriber {subscriberCounted} " +
            $"(of which the publisher counted as queued when its connection broke {publisherCounted}), " +
            $"unaccounted {attempted - refused - received.Count - countedLost}; subscriber notices: {string.Join(", ", stateChanges)}");
        Assert.That(received, Is.Ordered.Ascending.And.Unique, "each event arrived at most once, in publishing order");
        return new Figures(attempted, refused, received.Count, countedLost, refusedProbe, outage.Elapsed, [.. stateChanges]);
    }
}
