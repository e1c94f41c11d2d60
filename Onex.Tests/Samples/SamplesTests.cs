using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Onex.Bus;
using Onex.Events;
using Onex.Testing;
using Onex.Testing.Registry;
using Onex.Tests.Infrastructure;
using Onex.Tests.Packaging;
using Onex.Tests.Registry;
using Onex.Transports.Buses;

namespace Onex.Tests.Samples;

/// <summary>
/// The programs under samples/, built by the test command with the solution, run here as child processes against the
/// test run's registry (ONEX_REGISTRY_ENDPOINT), each bounded in time and stopped by its pid.
/// </summary>
public partial class SamplesTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static string Dll(string folder, string assembly) =>
        Path.Combine(PackedArtifacts.RepositoryRoot, "samples", folder, "bin", "Release", "net10.0", assembly + ".dll");

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    private static async Task StopAsync(NodeProcess process, bool expectZero = true)
    {
        try
        {
            process.CloseInput();
            var exit = await process.WaitForExitAsync(Wait);
            if (expectZero) Assert.That(exit, Is.Zero, $"the sample did not exit cleanly; stderr:\n{process.Errors}");
        }
        finally
        {
            process.KillIfRunning();
        }
    }

    [Test]
    public async Task Two_copies_of_the_quickstart_run_side_by_side_and_each_receives_its_order()
    {
        using var first = NodeProcess.StartDll(Dll("Quickstart", "Onex.Samples.Quickstart"), []);
        using var second = NodeProcess.StartDll(Dll("Quickstart", "Onex.Samples.Quickstart"), []);
        try
        {
            foreach (var copy in new[] { first, second })
            {
                Assert.That(await copy.WaitForExitAsync(Wait), Is.Zero, $"a copy failed; stderr:\n{copy.Errors}");
                Assert.That(copy.Output, Does.Contain("received orders.42.paid: {\"amount\":12.5}"));
            }
        }
        finally
        {
            first.KillIfRunning();
            second.KillIfRunning();
        }
    }

    [Test]
    public async Task The_producer_finds_the_consumers_bus_through_the_registry_and_the_consumer_gets_its_orders()
    {
        var bus = Unique("orders");
        using var consumer = NodeProcess.StartDll(Dll("Consumer", "Onex.Samples.Consumer"), [bus, "3"]);
        NodeProcess? producer = null;
        try
        {
            await consumer.WaitForLineAsync("consumer: ready", Wait);
            producer = NodeProcess.StartDll(Dll("Producer", "Onex.Samples.Producer"), [bus]);
            await producer.WaitForLineAsync("producer: joined", Wait);
            Assert.That(await consumer.WaitForExitAsync(Wait), Is.Zero, $"consumer stderr:\n{consumer.Errors}");
            Assert.That(consumer.Output, Does.Match(@"consumer: orders\.\d+\.paid \{""order"":\d+\}"));
            Assert.That(consumer.Output, Does.Contain("consumer: done after 3 event(s)"));
            await StopAsync(producer);
            Assert.That(producer.Output, Does.Match(@"producer: sent \d+ event\(s\)"));
        }
        finally
        {
            consumer.KillIfRunning();
            producer?.KillIfRunning();
            producer?.Dispose();
        }
    }

    [Test]
    public async Task The_tool_node_answers_a_valid_request_and_refuses_an_invalid_one_with_the_schema_errors()
    {
        var busName = Unique("tools");
        // A tool name of its own: a tool version belongs to the node that registered it, and another test run may
        // share this registry (ONEX_REGISTRY_ENDPOINT) with its own tool node alive.
        var tool = Unique("sample.add");
        using var node = NodeProcess.StartDll(Dll("ToolNode", "Onex.Samples.ToolNode"), [busName, tool]);
        try
        {
            await node.WaitForLineAsync($"tool-node: {tool} ", Wait);
            var registry = await OnexTestEnvironment.RegistryAsync();
            await using var bus = await EventBusFactory.CreateAsync(new EventBusOptions { Backend = "zmq", Name = busName, Role = EventBusRole.Join, Registry = registry });
            await using var replies = await bus.SubscribeAsync($"tool.{tool}.reply");

            Assert.That(await CallAsync(bus, tool, replies, """{"a":2,"b":40}"""), Is.EqualTo("""{"sum":42}"""));
            var refusal = JsonDocument.Parse(await CallAsync(bus, tool, replies, """{"a":"two"}""")).RootElement;
            Assert.That(refusal.GetProperty("error").GetString(), Is.EqualTo("INVALID_INPUT"));
            Assert.That(refusal.GetProperty("errors").GetArrayLength(), Is.GreaterThan(0), refusal.ToString());
        }
        finally
        {
            await StopAsync(node);
        }
    }

    /// <summary>Sends a request until its reply comes (a joined ZeroMQ participant's first events can precede its subscription).</summary>
    private static async Task<string> CallAsync(IEventBus bus, string tool, IEventSubscription replies, string json)
    {
        using var timeout = new CancellationTokenSource(Wait);
        var sent = new HashSet<string>();
        var reply = Task.Run(async () =>
        {
            await foreach (var evt in replies.WithCancellation(timeout.Token))
                lock (sent)
                    if (evt.CorrelationId is { } id && sent.Contains(id)) return Encoding.UTF8.GetString(evt.Payload.Span);
            throw new AssertionException("the reply subscription ended");
        });
        while (!reply.IsCompleted)
        {
            var request = OnexEvent.Create($"tool.{tool}.request", Encoding.UTF8.GetBytes(json));
            lock (sent) sent.Add(request.EventId);
            await bus.PublishAsync(request, timeout.Token);
            await Task.WhenAny(reply, Task.Delay(200, timeout.Token));
        }
        return await reply;
    }

    [Test]
    public async Task The_worker_service_reports_healthy_checks_and_stops_cleanly_on_sigterm()
    {
        using var worker = NodeProcess.StartDll(Dll("Worker", "Onex.Samples.Worker"), [], environment: new Dictionary<string, string?>
        {
            ["Onex__Bus__Backend"] = "zmq",
            ["Onex__Bus__Name"] = Unique("worker"),
        });
        try
        {
            var line = await worker.WaitForLineAsync("worker: health", Wait);
            Assert.That(line, Does.StartWith("worker: health Healthy").And.Contain("onex-registry").And.Contain("onex-bus"));
            worker.Terminate();
            Assert.That(await worker.WaitForExitAsync(Wait), Is.Zero, $"stderr:\n{worker.Errors}");
        }
        finally
        {
            worker.KillIfRunning();
        }
    }

    [Test]
    public async Task The_nunit_sample_passes_with_the_kit_as_docs_TESTING_md_says()
    {
        var result = await ChildProcess.RunAsync(ChildProcess.Dotnet,
            ["test", Path.Combine(PackedArtifacts.RepositoryRoot, "samples", "Testing", "Onex.Samples.Testing.csproj"), "-c", "Release", "--no-build"],
            TimeSpan.FromMinutes(5));
        Assert.That(result.ExitCode, Is.Zero, result.Describe("dotnet test samples/Testing"));
        Assert.That(result.Output, Does.Match(@"Passed:\s+2"), result.Describe("dotnet test samples/Testing"));
    }

    [TestCase("Quickstart/Program.cs", "Using it from code")]
    [TestCase("Worker/Program.cs", "In a .NET service")]
    public async Task The_README_code_block_is_the_samples_marked_region(string sample, string section)
    {
        var source = await File.ReadAllTextAsync(Path.Combine(PackedArtifacts.RepositoryRoot, "samples", sample));
        var region = RegionPattern().Match(source);
        Assert.That(region.Success, Is.True, $"samples/{sample} has no // <readme> ... // </readme> region");
        var readme = await File.ReadAllTextAsync(Path.Combine(PackedArtifacts.RepositoryRoot, "README.md"));
        var heading = readme.IndexOf($"## {section}", StringComparison.Ordinal);
        Assert.That(heading, Is.GreaterThanOrEqualTo(0), $"README has no section '{section}'");
        var block = CodeBlockPattern().Match(readme, heading);
        Assert.That(block.Success, Is.True, $"no csharp block in README section '{section}'");
        Assert.That(Normalize(block.Groups[1].Value), Is.EqualTo(Normalize(region.Groups[1].Value)),
            $"README section '{section}' differs from the marked region of samples/{sample}; copy the region into the README");
    }

    private static string Normalize(string code) => string.Join('\n', code.Replace("\r", "").Trim('\n').Split('\n').Select(l => l.TrimEnd()));

    [GeneratedRegex(@"// <readme>\n(.*?)// </readme>", RegexOptions.Singleline)]
    private static partial Regex RegionPattern();

    [GeneratedRegex(@"```csharp\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlockPattern();
}
