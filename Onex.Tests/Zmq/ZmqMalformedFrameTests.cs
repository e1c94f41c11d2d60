using NetMQ;
using NetMQ.Sockets;
using Onex.Events;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>Garbage sent into a bus's forwarder by a raw PUB socket is counted and dropped; delivery goes on.</summary>
public class ZmqMalformedFrameTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Test]
    public async Task Malformed_messages_are_counted_and_delivery_continues()
    {
        await using var host = await ZmqTestBus.HostAsync("malformed", ipc: false);
        await using var joined = await ZmqTestBus.JoinAsync(host, "joined");
        await using var subscription = await joined.SubscribeAsync("inject.>");
        using var raw = new PublisherSocket();
        raw.Connect(host.PublishEndpoint);

        // A raw PUB drops until the forwarder's subscribe-all reaches it: send single frames until one is counted.
        for (var attempt = 0; attempt < 200 && joined.MalformedCount == 0; attempt++)
        {
            raw.SendFrame("inject.single");
            await WaitForCountAsync(() => joined.MalformedCount > 0, TimeSpan.FromMilliseconds(50));
        }
        Assert.That(joined.MalformedCount, Is.EqualTo(1), "the first single-frame message should have been counted once");

        var mismatched = OnexEventCodec.Default.Encode(OnexEvent.Create("inject.other", ReadOnlyMemory<byte>.Empty));
        raw.SendMoreFrame("inject.garbage").SendFrame(new byte[] { 0xc1, 0xff, 0x00 });
        raw.SendMoreFrame("inject.mismatch").SendFrame(mismatched);
        raw.SendMoreFrame("inject.three").SendMoreFrame("x").SendFrame("y");
        raw.SendMoreFrame("inject.nil").SendFrame(new byte[] { 0xc0 });
        raw.SendMoreFrame("inject.ok").SendFrame(OnexEventCodec.Default.Encode(OnexEvent.Create("inject.ok", "fine"u8.ToArray())));

        var received = await ZmqEventBusTests.ReadWithinAsync(subscription, Wait);
        Assert.Multiple(() =>
        {
            Assert.That(received?.Topic, Is.EqualTo("inject.ok"), "the valid event after the garbage should be the only one delivered");
            Assert.That(joined.MalformedCount, Is.EqualTo(5), "garbage, topic mismatch, three frames and nil should each be counted");
            Assert.That(subscription.Reader.TryRead(out _), Is.False, "nothing else should have been delivered");
        });

        await host.PublishAsync(OnexEvent.Create("inject.after", ReadOnlyMemory<byte>.Empty));
        Assert.That((await ZmqEventBusTests.ReadWithinAsync(subscription, Wait))?.Topic, Is.EqualTo("inject.after"),
            "the bus should keep delivering after malformed input");
    }

    private static async Task WaitForCountAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = TimeProvider.System.GetTimestamp();
        while (!condition() && TimeProvider.System.GetElapsedTime(deadline) < timeout)
            await Task.Delay(5);
    }
}
