using System.Diagnostics;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>
/// The bus across a nats-server restart on the same port and store: it reconnects, publishes again once the server
/// is back, and its subscriptions carry on (re-making consumers the server lost). This fixture owns its server.
/// </summary>
[TestFixture]
public sealed class JetStreamServerRestartTests
{
    private NatsServerFixture _server = null!;

    [OneTimeSetUp]
    public async Task StartServerAsync() => _server = await NatsServerFixture.StartAsync();

    [OneTimeTearDown]
    public async Task StopServerAsync() => await _server.DisposeAsync();

    [SetUp]
    public async Task EnsureServerRunsAsync()
    {
        if (!_server.IsRunning) await _server.StartAgainAsync();
    }

    [Test]
    public async Task Durable_subscription_continues_after_the_server_restarts()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(_server, UniqueBusName()));
        await using var subscription = await bus.SubscribeAsync("audit.>", new SubscriptionOptions { DurableName = "auditor" });
        await bus.PublishAsync(Numbered("audit.entry", 1));
        Assert.That(NumberOf(await ReadWithinAsync(subscription.Reader, "event 1 before the restart")), Is.EqualTo(1));

        await _server.RestartAsync();
        await bus.PublishAsync(Numbered("audit.entry", 2));

        await ReadUntilNumberAsync(subscription.Reader, 2, "event 2 published after the restart");
    }

    [TestCase(false, TestName = "An_acknowledged_event_is_not_delivered_again_to_the_durable_after_the_server_restarts(SIGTERM)")]
    [TestCase(true, TestName = "An_acknowledged_event_is_not_delivered_again_to_the_durable_after_the_server_restarts(SIGKILL)")]
    public async Task An_acknowledged_event_is_not_delivered_again_to_the_durable_after_the_server_restarts(bool kill)
    {
        const int count = 50;
        var busName = UniqueBusName();
        await using (var bus = await JetStreamEventBus.ConnectAsync(Options(_server, busName)))
        {
            var first = await bus.SubscribeAsync("acked.>", new SubscriptionOptions { DurableName = "reader" });
            for (var i = 1; i <= count; i++) await bus.PublishAsync(Numbered("acked.entry", i));
            for (var i = 1; i <= count; i++)
                Assert.That(NumberOf(await ReadWithinAsync(first.Reader, $"event {i} of {count} before the restart")), Is.EqualTo(i));
            // Disposing acknowledges the event read last and waits until the server confirmed every acknowledgement.
            await first.DisposeAsync();
        }

        if (kill) await _server.KillAsync();
        else await _server.StopAsync();
        await _server.StartAgainAsync();

        await using var again = await JetStreamEventBus.ConnectAsync(Options(_server, busName));
        await using var second = await again.SubscribeAsync("acked.>", new SubscriptionOptions { DurableName = "reader" });
        await again.PublishAsync(Numbered("acked.entry", count + 1));
        Assert.That(NumberOf(await ReadWithinAsync(second.Reader, "the first event after the restart")), Is.EqualTo(count + 1),
            $"an event acknowledged (and confirmed) before the {(kill ? "kill" : "stop")} was delivered again to another subscriber of the durable");
    }

    [Test]
    public async Task Non_durable_subscription_continues_after_the_server_restarts()
    {
        // The server keeps an ephemeral consumer in memory only: the subscription has to declare it again.
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(_server, UniqueBusName()));
        await using var subscription = await bus.SubscribeAsync("audit.>");
        await bus.PublishAsync(Numbered("audit.entry", 1));
        Assert.That(NumberOf(await ReadWithinAsync(subscription.Reader, "event 1 before the restart")), Is.EqualTo(1));

        await _server.RestartAsync();
        await bus.PublishAsync(Numbered("audit.entry", 2));

        await ReadUntilNumberAsync(subscription.Reader, 2, "event 2 published after the restart");
    }

    [Test]
    public async Task Memory_stream_lost_in_a_restart_is_declared_again()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(_server, UniqueBusName()) with { Storage = JetStreamStorage.Memory });
        await using var subscription = await bus.SubscribeAsync("cache.>");

        await _server.RestartAsync();
        await bus.PublishAsync(Numbered("cache.fill", 1));

        await ReadUntilNumberAsync(subscription.Reader, 1, "the event published into the re-declared stream");
    }

    [Test]
    public async Task Publishing_while_the_server_is_down_fails_with_UNAVAILABLE_within_the_publish_timeout()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(
            Options(_server, UniqueBusName()) with { PublishTimeout = TimeSpan.FromSeconds(1), RequestTimeout = TimeSpan.FromMilliseconds(500) });
        await _server.StopAsync();
        var elapsed = Stopwatch.StartNew();

        var error = Assert.ThrowsAsync<UnavailableException>(async () => await bus.PublishAsync(Numbered("lost.maybe", 1)));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Code, Is.EqualTo(ErrorCodes.Unavailable));
            Assert.That(error.Message, Does.Contain(_server.Url), "the error should name the server");
            Assert.That(elapsed.Elapsed, Is.LessThan(TimeSpan.FromSeconds(3)), "publish should give up after its timeout");
        });
        await _server.StartAgainAsync();
    }

    /// <summary>Reads until the event numbered <paramref name="number"/> arrives; at-least-once allows repeats before it.</summary>
    private static async Task ReadUntilNumberAsync(System.Threading.Channels.ChannelReader<OnexEvent> reader, int number, string what)
    {
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed < WaitLimit)
        {
            var evt = await ReadWithinAsync(reader, what);
            if (NumberOf(evt) == number) return;
            Assert.That(NumberOf(evt), Is.LessThan(number), $"unexpected event while waiting for {what}");
        }
        Assert.Fail($"Timed out waiting for {what}.");
    }
}
