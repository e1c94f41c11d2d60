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

        // A raw PUB drops until the forwarder's subscribe-all reaches it: send valid probes until one arrives.
        var probe = OnexEventCodec.Default.Encode(OnexEvent.Create("inject.probe", ReadOnlyMemory<byte>.Empty));
        OnexEvent? first = null;
        for (var attempt = 0; attempt < 200 && first is null; attempt++)
        {
            raw.SendMoreFrame("inject.probe").SendFrame(probe);
            first = await ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(50));
        }
        Assert.That(first, Is.Not.Null, "the raw publisher's probes never reached the subscriber");

        var mismatched = OnexEventCodec.Default.Encode(OnexEvent.Create("inject.other", ReadOnlyMemory<byte>.Empty));
        raw.SendFrame("inject.single");
        raw.SendMoreFrame("inject.garbage").SendFrame(new byte[] { 0xc1, 0xff, 0x00 });
        raw.SendMoreFrame("inject.mismatch").SendFrame(mismatched);
        raw.SendMoreFrame("inject.three").SendMoreFrame("x").SendFrame("y");
        raw.SendMoreFrame("inject.nil").SendFrame(new byte[] { 0xc0 });
        raw.SendMoreFrame("inject.ok").SendFrame(OnexEventCodec.Default.Encode(OnexEvent.Create("inject.ok", "fine"u8.ToArray())));

        // One publisher's messages arrive in order: once 'inject.ok' is in, every garbage message was handled.
        var delivered = new List<string>();
        OnexEvent? received;
        do
        {
            received = await ZmqEventBusTests.ReadWithinAsync(subscription, Wait);
            if (received is not null && received.Topic != "inject.probe") delivered.Add(received.Topic);
        }
        while (received is not null && received.Topic != "inject.ok");

        Assert.Multiple(() =>
        {
            Assert.That(delivered, Is.EqualTo(new[] { "inject.ok" }), "only the valid event after the garbage should be delivered");
            Assert.That(joined.MalformedCount, Is.EqualTo(5), "single frame, garbage, topic mismatch, three frames and nil should each be counted once");
        });

        await host.PublishAsync(OnexEvent.Create("inject.after", ReadOnlyMemory<byte>.Empty));
        Assert.That((await ZmqEventBusTests.ReadWithinAsync(subscription, Wait))?.Topic, Is.EqualTo("inject.after"),
            "the bus should keep delivering after malformed input");
    }
}
