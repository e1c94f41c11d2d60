// The producer of docs/samples/producer-consumer.md: finds the bus by name through the registry, joins it and
// publishes an order every 100 ms until its input ends (Ctrl-D, or the pipe closes) or after 10 minutes.
// Usage: Producer [BUS-NAME]
using Onex.Bus;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

var name = args.Length > 0 ? args[0] : "orders";
await using var registry = await RegistryClient.ConnectAsync(RegistryClientOptions.Default with { NodeName = "sample producer" });
// Join: no endpoints given, so the factory looks the bus up in the registry by its name.
await using var bus = await EventBusFactory.CreateAsync(new EventBusOptions { Backend = "zmq", Name = name, Role = EventBusRole.Join, Registry = registry });
Console.WriteLine($"producer: joined bus '{name}'");

using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(10));
var inputEnded = Task.Run(() => Console.In.ReadToEnd()).ContinueWith(_ => stop.Cancel(), TaskScheduler.Default);
using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
var sent = 0;
try
{
    while (await timer.WaitForNextTickAsync(stop.Token))
    {
        sent++;
        await bus.PublishAsync($"orders.{sent}.paid", System.Text.Encoding.UTF8.GetBytes($$"""{"order":{{sent}}}"""), cancellationToken: stop.Token);
    }
}
catch (OperationCanceledException)
{
    // input ended: stop publishing
}
Console.WriteLine($"producer: sent {sent} event(s)");
