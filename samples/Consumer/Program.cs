// The consumer of docs/samples/producer-consumer.md: hosts a ZeroMQ bus registered under a name in the registry,
// prints the first COUNT events on orders.>, then exits. Usage: Consumer [BUS-NAME] [COUNT]
using System.Text;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

var name = args.Length > 0 ? args[0] : "orders";
var count = args.Length > 1 && int.TryParse(args[1], out var n) && n > 0 ? n : 3;

await using var registry = await RegistryClient.ConnectAsync(RegistryClientOptions.Default with { NodeName = "sample consumer" });
// Host: the bus's two endpoints are leased ports; the registry records them under the bus's name.
await using var bus = await EventBusFactory.CreateAsync(new EventBusOptions { Backend = "zmq", Name = name, Registry = registry });
await using var orders = await bus.SubscribeAsync("orders.>");
Console.WriteLine($"consumer: ready on bus '{name}'");

var received = 0;
await foreach (var evt in orders)
{
    Console.WriteLine($"consumer: {evt.Topic} {Encoding.UTF8.GetString(evt.Payload.Span)}");
    if (++received == count) break;
}
Console.WriteLine($"consumer: done after {received} event(s)");
