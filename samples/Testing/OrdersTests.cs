// The sample test file of docs/samples/testing.md: Onex.Testing as docs/TESTING.md says. The packaging test copies
// this file into a fresh `dotnet new nunit` project restored against the packed Onex.Testing.
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;
using Onex.Events;
using Onex.Protocol;
using Onex.Testing;

[assembly: Onex.Testing.OnexTestResources]
[assembly: Parallelizable(ParallelScope.Fixtures)]

namespace Onex.Samples.Testing;

public class OrdersTests
{
    [Test]
    public async Task Serves_on_its_port()
    {
        var leases = await OnexTest.LeasePortsAsync(2);
        var (http, metrics) = (leases.Ports[0], leases.Ports[1]);
        using var listener = new TcpListener(IPAddress.Loopback, http);
        listener.Start();   // the leased port is free for this test alone
        Assert.That(metrics, Is.Not.EqualTo(http));
    }

    [Test]
    public async Task Orders_reach_the_billing_side()
    {
        var bus = await OnexTest.CreateBusAsync(BusKinds.Zmq);   // hosted, registered
        var billing = await OnexTest.JoinBusAsync(bus);          // another participant, found by name in the registry
        await using var paid = await bus.SubscribeAsync("orders.*.paid");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = FirstAsync(paid, timeout.Token);
        // A ZeroMQ subscription reaches a publisher a moment after it is made: publish until the first event arrives.
        while (!received.IsCompleted)
        {
            await billing.PublishAsync(OnexEvent.Create("orders.42.paid", "{}"u8.ToArray()), timeout.Token);
            await Task.WhenAny(received, Task.Delay(50, timeout.Token));
        }
        Assert.That((await received).Topic, Is.EqualTo("orders.42.paid"));
    }

    private static async Task<OnexEvent> FirstAsync(IAsyncEnumerable<OnexEvent> events, CancellationToken cancellationToken)
    {
        await foreach (var evt in events.WithCancellation(cancellationToken)) return evt;
        throw new AssertionException("the subscription ended without an event");
    }
}
