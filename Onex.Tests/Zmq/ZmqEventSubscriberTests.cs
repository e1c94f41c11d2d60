using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary><see cref="ZmqEventSubscriber"/> against a bare <see cref="ZmqEventPublisher"/> (the registry's shape).</summary>
public class ZmqEventSubscriberTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Test]
    public async Task Subscriber_confirmed_through_a_bare_publisher_receives_its_first_event()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        await using var publisher = ZmqEventPublisher.Bind($"tcp://127.0.0.1:{port}");
        await using var subscriber = ZmqEventSubscriber.Connect(publisher.Endpoint, new ZmqEventSubscriberOptions { ProbePublisher = publisher });
        await using var subscription = await subscriber.SubscribeAsync("registry.lease.*");

        await publisher.PublishAsync(OnexEvent.Create("registry.lease.granted", new byte[] { 7 }));

        var received = await ZmqEventBusTests.ReadWithinAsync(subscription, Wait);
        Assert.That(received?.Payload.ToArray(), Is.EqualTo(new byte[] { 7 }), "the first event after SubscribeAsync did not arrive");
    }

    [Test]
    public async Task Unconfirmed_subscriber_receives_from_a_bare_publisher_once_connected()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        await using var publisher = ZmqEventPublisher.Bind($"tcp://127.0.0.1:{port}");
        await using var subscriber = ZmqEventSubscriber.Connect(publisher.Endpoint);
        await using var subscription = await subscriber.SubscribeAsync("registry.>");

        // Without a probe publisher the filter may still be travelling (slow joiner): publish until one arrives.
        OnexEvent? received = null;
        for (var attempt = 0; attempt < 200 && received is null; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create("registry.heartbeat", ReadOnlyMemory<byte>.Empty));
            received = await ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(50));
        }

        Assert.That(received?.Topic, Is.EqualTo("registry.heartbeat"), "no event arrived within 200 attempts");
    }

    [Test]
    public async Task Subscriber_filters_and_matches_patterns_from_a_bare_publisher()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        await using var publisher = ZmqEventPublisher.Bind($"tcp://127.0.0.1:{port}");
        await using var subscriber = ZmqEventSubscriber.Connect(publisher.Endpoint, new ZmqEventSubscriberOptions { ProbePublisher = publisher });
        await using var subscription = await subscriber.SubscribeAsync("registry.*.granted");

        foreach (var topic in new[] { "registry.lease.released", "registry.lease.granted.extra", "registry.granted", "registry.port.granted" })
            await publisher.PublishAsync(OnexEvent.Create(topic, ReadOnlyMemory<byte>.Empty));

        Assert.That((await ZmqEventBusTests.ReadWithinAsync(subscription, Wait))?.Topic, Is.EqualTo("registry.port.granted"));
        Assert.That(subscriber.ReceivedCount, Is.EqualTo(4), "all four passed the 'registry.' prefix filter and were decoded");
    }

    [TestCase("nonsense")]
    [TestCase("tcp://127.0.0.1:port")]
    [TestCase("ipc://")]
    public void Connecting_to_an_invalid_endpoint_fails_with_ArgumentException_naming_it(string endpoint)
    {
        var ex = Assert.Throws<ArgumentException>(() => ZmqEventSubscriber.Connect(endpoint));

        Assert.That(ex!.Message, Does.Contain($"'{endpoint}'").Or.Contain("empty"), "the message should name the endpoint");
    }

    [Test]
    public async Task Disposing_the_subscriber_completes_its_subscriptions()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        await using var publisher = ZmqEventPublisher.Bind($"tcp://127.0.0.1:{port}");
        var subscriber = ZmqEventSubscriber.Connect(publisher.Endpoint);
        var subscription = await subscriber.SubscribeAsync("registry.>");
        var pending = subscription.Reader.WaitToReadAsync().AsTask();

        await subscriber.DisposeAsync();

        Assert.That(await pending.WaitAsync(Wait), Is.False, "the pending read should finish with no event");
        Assert.That(async () => await subscriber.SubscribeAsync("late.>"), Throws.InstanceOf<ObjectDisposedException>());
    }
}
