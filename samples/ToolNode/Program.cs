// The tool node of docs/samples/tool-node.md: registers the contract of a tool "sample.add" with the registry, hosts
// a ZeroMQ bus, and answers each request on tool.sample.add.request: the registry validates the payload against the
// contract's input schema; a valid one gets {"sum":...}, an invalid one {"error":"INVALID_INPUT","errors":[...]},
// on tool.sample.add.reply with the request's correlation id. Runs until its input ends.
// Usage: ToolNode [BUS-NAME [TOOL-NAME]] (another tool name lets two copies share one registry, as parallel test runs do)
using System.Text;
using System.Text.Json;
using Onex.Bus;
using Onex.Events;
using Onex.Protocol;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

var name = args.Length > 0 ? args[0] : "tools";
var tool = args.Length > 1 ? args[1] : "sample.add";
const string InputSchema = """
    { "type": "object", "required": ["a", "b"], "additionalProperties": false,
      "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } } }
    """;
const string OutputSchema = """{ "type": "object", "required": ["sum"], "properties": { "sum": { "type": "integer" } } }""";

await using var registry = await RegistryClient.ConnectAsync(RegistryClientOptions.Default with { NodeName = "sample tool node" });
var contract = await registry.RegisterToolAsync(tool, "1.0.0", InputSchema, OutputSchema, "Adds two integers.",
    [new ToolErrorCode { Code = "INVALID_INPUT", Description = "The request does not match the input schema." }]);
await using var bus = await EventBusFactory.CreateAsync(new EventBusOptions { Backend = "zmq", Name = name, Registry = registry });
await using var requests = await bus.SubscribeAsync($"tool.{tool}.request");
Console.WriteLine($"tool-node: {tool} {contract.Version} (fingerprint {contract.Fingerprint}) answering on bus '{name}'");

using var stop = new CancellationTokenSource();
_ = Task.Run(() => Console.In.ReadToEnd()).ContinueWith(_ => stop.Cancel(), TaskScheduler.Default);
try
{
    await foreach (var request in requests.WithCancellation(stop.Token))
    {
        var json = Encoding.UTF8.GetString(request.Payload.Span);
        var check = await registry.ValidatePayloadAsync(tool, json, PayloadDirections.Input, cancellationToken: stop.Token);
        string reply;
        if (check.Valid)
        {
            using var input = JsonDocument.Parse(json);
            reply = JsonSerializer.Serialize(new { sum = input.RootElement.GetProperty("a").GetInt64() + input.RootElement.GetProperty("b").GetInt64() });
        }
        else
        {
            reply = JsonSerializer.Serialize(new { error = "INVALID_INPUT", errors = check.Errors.Select(e => e.ToString()) });
        }
        await bus.PublishAsync(OnexEvent.Create($"tool.{tool}.reply", Encoding.UTF8.GetBytes(reply), correlationId: request.EventId), stop.Token);
        Console.WriteLine($"tool-node: {json} -> {reply}");
    }
}
catch (OperationCanceledException)
{
    // input ended
}
Console.WriteLine("tool-node: stopped");
