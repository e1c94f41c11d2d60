using System.Threading.Channels;
using Onex.Bus;
using Onex.Events;
using Onex.Transports.Ipc;

namespace Onex.Tests.Ipc;

/// <summary>
/// Issue 11 item 3 on Unix sockets: a full subscription pauses only itself, never the participant's other
/// subscriptions. A joined participant has one connection and one reading thread, so a full Wait-mode subscription
/// there drops and counts (as on ZeroMQ) rather than stopping the thread.
/// </summary>
public class IpcWaitModeTests
{
    private IpcTestRoot _root = null!;

    [SetUp]
    public void CreateRoot() => _root = new IpcTestRoot();

    [TearDown]
    public void RemoveRoot() => _root.Dispose();

    [Test]
    public async Task A_full_wait_mode_subscription_does_not_hold_up_another_subscription_of_the_same_participant()
    {
        const int sent = 200;
        await using var host = await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = "wait", RootDirectory = _root.Path });
        await using var joined = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });
        await using var stalled = await joined.SubscribeAsync("wait.data", new SubscriptionOptions { Capacity = 4, FullMode = BoundedChannelFullMode.Wait });
        await using var reading = await joined.SubscribeAsync("wait.data", new SubscriptionOptions { Capacity = 2 * sent });

        for (var i = 1; i <= sent; i++)
            await host.PublishAsync(OnexEvent.Create("wait.data", BitConverter.GetBytes(i)));

        var received = new List<int>();
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            try
            {
                while (received.Count < sent) received.Add(BitConverter.ToInt32((await reading.Reader.ReadAsync(wait.Token)).Payload.Span));
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"the reading subscription got {received.Count} of {sent} events while the other one was full");
            }
        }
        Assert.Multiple(() =>
        {
            Assert.That(received, Is.EqualTo(Enumerable.Range(1, sent)), "every event, in order, at the subscription that reads");
            Assert.That(stalled.DroppedCount, Is.EqualTo(sent - 4), "the full Wait-mode subscription kept 4 and counted the rest as dropped");
            Assert.That(joined.Health.DroppedCount(DropCause.SubscriberQueue), Is.EqualTo(sent - 4), "and the participant's health says so");
        });
    }
}
