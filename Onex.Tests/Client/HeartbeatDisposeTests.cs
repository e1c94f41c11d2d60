using Microsoft.Extensions.Time.Testing;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>
/// Disposing a client whose heartbeat loop is busy (a heartbeat awaiting its reply, a tick firing at the same moment,
/// a NOT_FOUND starting a re-assertion) ends quietly: nothing from the background loops escapes DisposeAsync.
/// The heartbeat timer runs on a fake clock, so each race is set up on purpose rather than waited for.
/// </summary>
[TestFixture]
public sealed class HeartbeatDisposeTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private static RegistryClientOptions FakeClockOptions(TestRegistry registry, FakeTimeProvider time) =>
        registry.ClientOptions() with { TimeProvider = time, HeartbeatInterval = Interval };

    [Test]
    public async Task Dispose_while_a_heartbeat_awaits_its_reply_completes_without_throwing()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using var registry = await TestRegistry.StartAsync(timeProvider: time);
        for (var round = 0; round < 20; round++)
        {
            var client = await RegistryClient.ConnectAsync(FakeClockOptions(registry, time));
            var heartbeatLost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // The heartbeat's Ack is lost: the heartbeat stays in flight until the client gives up on it.
            client.ReplyFilter = reply =>
            {
                if (reply.MessageType != MessageTypes.Of<Ack>()) return true;
                heartbeatLost.TrySetResult();
                return false;
            };

            time.Advance(Interval);
            await heartbeatLost.Task.Within($"round {round}: a heartbeat after one interval");
            Assert.That(client.RequestsInFlight, Is.EqualTo(1), $"round {round}: the heartbeat should be awaiting its reply");

            client.ReplyFilter = null; // the departure's Ack gets through
            Assert.DoesNotThrowAsync(async () => await client.DisposeAsync().AsTask().Within($"round {round}: DisposeAsync"),
                $"round {round}: DisposeAsync with a heartbeat in flight");
        }
    }

    [Test]
    public async Task Dispose_racing_a_heartbeat_tick_completes_without_throwing()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using var registry = await TestRegistry.StartAsync(timeProvider: time);
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false, DepartOnDispose = false });
        for (var round = 0; round < 100; round++)
        {
            var client = await RegistryClient.ConnectAsync(FakeClockOptions(registry, time));
            if (round % 2 == 1)
            {
                // The registry forgets the node: the tick's heartbeat gets NOT_FOUND and starts a re-assertion mid-dispose.
                await observer.RequestAsync<NodeDeparture, Ack>(new NodeDeparture { NodeId = client.NodeId }, CancellationToken.None);
            }

            using var start = new Barrier(2);
            var tick = Task.Run(() =>
            {
                start.SignalAndWait();
                time.Advance(Interval);
            });
            var dispose = Task.Run(async () =>
            {
                start.SignalAndWait();
                await client.DisposeAsync();
            });

            await tick.Within($"round {round}: the clock tick");
            Assert.DoesNotThrowAsync(async () => await dispose.Within($"round {round}: DisposeAsync"),
                $"round {round}: DisposeAsync racing a heartbeat tick{(round % 2 == 1 ? " answered NOT_FOUND" : "")}");
        }
    }
}
