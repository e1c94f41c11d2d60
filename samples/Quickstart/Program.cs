// README "Using it from code": the block between the readme markers is the README's, word for word (a test checks).
// <readme>
using System.Text;
using Onex.Events;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

await using var registry = await RegistryClient.ConnectAsync();          // ONEX_REGISTRY_ENDPOINT or the default
await using var ports = await registry.LeasePortsAsync(2);                // renewed in the background, released on dispose
Console.WriteLine($"leased ports: {string.Join(", ", ports.Ports)}");

// ONEX_BUS picks the backend (memory by default: in this process, so any number of copies can run side by side).
await using var bus = await EventBusFactory.CreateAsync(EventBusOptions.FromEnvironment() with { Registry = registry });
await using var orders = await bus.SubscribeAsync("orders.*.paid");
await bus.PublishAsync(OnexEvent.Create("orders.42.paid", """{"amount":12.5}"""u8.ToArray()));
await foreach (var evt in orders)
{
    Console.WriteLine($"received {evt.Topic}: {Encoding.UTF8.GetString(evt.Payload.Span)}");
    break;
}
// </readme>
