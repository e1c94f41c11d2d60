using System.Diagnostics;
using Onex.Bus;
using Onex.Cli.Commands;
using Onex.Errors;
using Onex.Events;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Conformance;

/// <summary>
/// The conformance cases only a bus that crosses processes has: a publisher and a subscriber in a real child process
/// (the <c>onex bus</c> CLI joining the same logical bus), and a peer restart. Fixtures of the zmq, ipc and jetstream
/// backends derive from this class.
/// </summary>
public abstract class NetworkedEventBusConformanceTests : EventBusConformanceTests
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>The <c>onex bus</c> options (<c>--backend</c>, <c>--name</c>, <c>--endpoints</c>) that join <paramref name="first"/>'s bus.</summary>
    protected abstract IReadOnlyList<string> JoinArguments(IEventBus first);

    /// <summary>
    /// Restarts the peer the other participants depend on (the hosting participant, or the server) and returns the
    /// participant to publish from afterwards (a new host, or <paramref name="first"/> itself).
    /// </summary>
    protected abstract ValueTask<IEventBus> RestartPeerAsync(IEventBus first, CancellationToken cancellationToken);

    /// <summary>A child process may take a while to start the runtime on a loaded machine.</summary>
    private TimeSpan ProcessTimeout => WaitTimeout * 3;

    [Test]
    public async Task Child_process_subscriber_receives_every_event_in_publisher_order()
    {
        const int count = 200;
        var first = await NewBusAsync();
        await using var child = OnexProcess.Start(["bus", "subscribe", .. JoinArguments(first), "--pattern", "xproc.>", "--count", count.ToString()]);
        var ready = await child.ReadJsonLineAsync("the child's subscription to go live", ProcessTimeout);
        Assert.That(ready.GetProperty("status").GetString(), Is.EqualTo("subscribed"));

        for (var sequence = 1; sequence <= count; sequence++)
            await first.PublishAsync(OnexEvent.Create("xproc.data", BusCommand.Payload(sequence, 64)), TestCancellation);

        var received = new List<long>();
        for (var i = 0; i < count; i++)
            received.Add((await child.ReadJsonLineAsync($"event {i + 1} of {count} in the child", ProcessTimeout)).GetProperty("sequence").GetInt64());
        Assert.That(received, Is.EqualTo(Enumerable.Range(1, count).Select(i => (long)i)), "the child saw events missing or out of order");
        Assert.That(await child.WaitForExitAsync(ProcessTimeout), Is.EqualTo(0), await child.StandardErrorAsync());
    }

    [Test]
    public async Task A_child_process_subscriber_receives_the_producer_span_as_trace_parent()
    {
        var first = await NewBusAsync();
        var topic = $"xtrace.t{Guid.NewGuid():N}";
        using var spans = new Onex.Tests.Diagnostics.SpanRecorder(Onex.Diagnostics.OnexBusDiagnostics.Name, topic);
        await using var child = OnexProcess.Start(["bus", "subscribe", .. JoinArguments(first), "--pattern", topic, "--count", "1"]);
        var ready = await child.ReadJsonLineAsync("the child's subscription to go live", ProcessTimeout);
        Assert.That(ready.GetProperty("status").GetString(), Is.EqualTo("subscribed"));

        await first.PublishAsync(OnexEvent.Create(topic, BusCommand.Payload(1, 16)), TestCancellation);

        var line = await child.ReadJsonLineAsync("the traced event in the child", ProcessTimeout);
        Assert.That(await child.WaitForExitAsync(ProcessTimeout), Is.EqualTo(0), await child.StandardErrorAsync());
        var publish = spans.Stopped.Single(s => s.Kind == ActivityKind.Producer);
        Assert.That(line.GetProperty("traceparent").GetString(), Is.EqualTo(Onex.Diagnostics.OnexBusDiagnostics.FormatTraceParent(publish.Context)),
            "the other process received the producer span's W3C traceparent");
    }

    [Test]
    public async Task Events_from_a_child_process_publisher_arrive_in_order()
    {
        const int count = 200;
        var first = await NewBusAsync();
        var inbox = await SubscribeInboxAsync(first, "xproc.>");

        await using var child = OnexProcess.Start(["bus", "publish", .. JoinArguments(first), "--topic", "xproc.data", "--count", count.ToString()]);
        var done = await child.ReadJsonLineAsync("the child's publish report", ProcessTimeout);
        Assert.That(done.GetProperty("status").GetString(), Is.EqualTo("published"));
        Assert.That(await child.WaitForExitAsync(ProcessTimeout), Is.EqualTo(0), await child.StandardErrorAsync());

        var received = await inbox.WaitForCountAsync(count, WaitTimeout, $"{count} events from the child publisher");
        Assert.That(received.Select(e => BusCommand.SequenceOf(e.Payload.Span)), Is.EqualTo(Enumerable.Range(1, count).Select(i => (long)i)),
            "events from the child arrived missing or out of order");
    }

    [Test]
    public async Task A_child_process_subscriber_prints_a_line_when_its_connection_drops_and_when_it_is_back()
    {
        var first = await NewBusAsync();
        await using var child = OnexProcess.Start(["bus", "subscribe", .. JoinArguments(first), "--pattern", "xstate.>"]);
        var ready = await child.ReadJsonLineAsync("the child's subscription to go live", ProcessTimeout);
        Assert.That(ready.GetProperty("status").GetString(), Is.EqualTo("subscribed"));

        await RestartPeerAsync(first, TestCancellation);

        Assert.That(await NextConnectionNoticeAsync(child, "the child's notice that its connection dropped"), Is.EqualTo("disconnected"));
        Assert.That(await NextConnectionNoticeAsync(child, "the child's notice that its connection is back"), Is.EqualTo("connected"));
    }

    /// <summary>The state named by the next connection-change notice line a child prints, skipping other lines.</summary>
    private async Task<string?> NextConnectionNoticeAsync(OnexProcess child, string what)
    {
        while (true)
        {
            var line = await child.ReadJsonLineAsync(what, ProcessTimeout);
            if (line.TryGetProperty("status", out var status) && status.GetString() == "notice"
                && line.GetProperty("kind").GetString() == "connectionChanged")
                return line.GetProperty("state").GetString();
        }
    }

    [Test]
    public async Task Joined_participant_receives_again_after_the_peer_restarts()
    {
        var first = await NewBusAsync();
        var second = await JoinAsync(first);
        var inbox = await SubscribeInboxAsync(second, "restart.>");
        await first.PublishAsync(OnexEvent.Create("restart.before", "1"u8.ToArray()), TestCancellation);
        await inbox.WaitForCountAsync(1, WaitTimeout, "an event before the restart");

        var publisher = await RestartPeerAsync(first, TestCancellation);

        // Events published while the joined participant reconnects may be lost (at most once), so probe until one arrives.
        var elapsed = Stopwatch.StartNew();
        while (!inbox.Snapshot().Any(e => e.Topic == "restart.after"))
        {
            if (elapsed.Elapsed > WaitTimeout * 2)
                Assert.Fail($"No event reached the joined participant within {(WaitTimeout * 2).TotalSeconds:0}s of the peer restart.");
            try
            {
                await publisher.PublishAsync(OnexEvent.Create("restart.after", "2"u8.ToArray()), TestCancellation);
            }
            catch (UnavailableException)
            {
                // The publisher itself is still reconnecting; try again.
            }
            await Task.Delay(ProbeInterval, TestCancellation);
        }

        // Once the path is back, delivery is complete and ordered again.
        const int count = 50;
        for (var sequence = 1; sequence <= count; sequence++)
            await publisher.PublishAsync(OnexEvent.Create("restart.ordered", BusCommand.Payload(sequence, 16)), TestCancellation);
        await inbox.WaitUntilAsync(events => events.Count(e => e.Topic == "restart.ordered") >= count, WaitTimeout, $"{count} events after the restart");
        Assert.That(inbox.Snapshot().Where(e => e.Topic == "restart.ordered").Select(e => BusCommand.SequenceOf(e.Payload.Span)).Distinct(),
            Is.EqualTo(Enumerable.Range(1, count).Select(i => (long)i)), "events after the restart arrived missing or out of order");
    }
}
