using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

public class ZmqEventPublisherTests
{
    [Test]
    public async Task Published_event_reaches_a_subscriber_as_topic_and_event_frames()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        await using var publisher = ZmqEventPublisher.Bind($"tcp://127.0.0.1:{port}");
        using var subscriber = new SubscriberSocket();
        subscriber.Connect(publisher.Endpoint);
        subscriber.Subscribe("test.");

        // PUB drops until the subscription has propagated (slow joiner): publish probes until one arrives.
        List<byte[]>? frames = null;
        for (var attempt = 0; attempt < 200 && frames is null; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create("test.probe", new byte[] { 1, 2, 3 }, "probe"));
            var message = new NetMQMessage();
            if (subscriber.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(50), ref message))
                frames = message.Select(f => f.ToByteArray()).ToList();
        }

        Assert.That(frames, Is.Not.Null, "no event arrived within 200 probes");
        Assert.That(frames!, Has.Count.EqualTo(2), "expected [topic][event] frames");
        Assert.That(System.Text.Encoding.UTF8.GetString(frames![0]), Is.EqualTo("test.probe"));
        var evt = OnexEventCodec.Default.Decode(frames[1]);
        Assert.That(evt.Payload.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public async Task Binding_an_endpoint_in_use_fails_with_port_unavailable_naming_it()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        var endpoint = $"tcp://127.0.0.1:{port}";
        await using var first = ZmqEventPublisher.Bind(endpoint);

        var ex = Assert.Throws<PortUnavailableException>(() => ZmqEventPublisher.Bind(endpoint));
        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.PortUnavailable));
        Assert.That(ex.Message, Does.Contain(endpoint));
    }
}
