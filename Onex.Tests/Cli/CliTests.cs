using System.Text.Json;
using Onex.Cli;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary>The <c>onex</c> CLI, run in-process against an in-process registry node.</summary>
public class CliTests
{
    private const string NameSchema = """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""";

    private static async Task<IReadOnlyList<PortLease>> LeasesAsync(RegistryClient client) =>
        (await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] })).Leases!;

    [Test]
    public async Task Describe_json_is_the_introspection_response_and_lists_a_leased_port()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync();

        var result = await Onex.RunAsync(Onex.At(registry, "describe", "--json"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        using var json = JsonDocument.Parse(result.Output);
        Assert.That(json.RootElement.GetProperty("epoch").GetString(), Is.EqualTo(registry.Host.Epoch));
        var ports = json.RootElement.GetProperty("leases").EnumerateArray().Select(l => l.GetProperty("port").GetInt32());
        Assert.That(ports, Does.Contain(leases.Ports[0]));
        Assert.That(json.RootElement.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("nodeId").GetString()), Does.Contain(client.NodeId));
    }

    [Test]
    public async Task Describe_prints_tables_with_the_leased_port()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Purpose = "table-test" });

        var result = await Onex.RunAsync(Onex.At(registry, "describe"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        Assert.That(result.Output, Does.Contain($"epoch {registry.Host.Epoch}").And.Contain("Leases (1)").And.Contain("table-test")
            .And.Contain(leases.Ports[0].ToString()).And.Contain(client.NodeId));
    }

    [Test]
    public async Task Ports_lease_prints_the_leases_and_releases_them_when_stdin_closes()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        var output = new CapturedOutput();
        var error = new StringWriter();
        var input = new ClosableInput();

        var run = OnexCli.RunAsync(Onex.At(registry, "ports", "lease", "--count", "2", "--json"), output, error, input);
        var line = await output.NextLineAsync("the leases on stdout");
        var printed = JsonSerializer.Deserialize<List<PortLease>>(line, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var heldWhileRunning = await LeasesAsync(observer);
        input.CloseInput();
        var exitCode = await run.Within("onex ports lease to exit after stdin closed");

        Assert.That(printed, Has.Count.EqualTo(2));
        Assert.That(heldWhileRunning.Select(l => l.LeaseId), Is.EquivalentTo(printed.Select(l => l.LeaseId)), "the printed leases are held while running");
        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error.ToString());
        Assert.That(await LeasesAsync(observer), Is.Empty, "the leases are released on exit");
        Assert.That(error.ToString(), Does.Contain("released"));
    }

    [Test]
    public async Task Ports_lease_without_count_is_a_usage_error()
    {
        var result = await Onex.RunAsync("ports", "lease");

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
        Assert.That(result.Error, Does.Contain("--count"));
    }

    [Test]
    public async Task Ports_release_releases_a_lease_held_by_another_node()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false });
        var leaseId = leases.Leases[0].LeaseId;

        var result = await Onex.RunAsync(Onex.At(registry, "ports", "release", leaseId));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        Assert.That(result.Output, Does.Contain(leaseId).And.Contain(leases.Ports[0].ToString()));
        Assert.That(await LeasesAsync(client), Is.Empty);
    }

    [Test]
    public async Task Ports_release_of_an_unknown_lease_exits_1_saying_so()
    {
        await using var registry = await TestRegistry.StartAsync();

        var result = await Onex.RunAsync(Onex.At(registry, "ports", "release", "L-nope"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Failed), result.ToString());
        Assert.That(result.Error, Does.Contain("no lease 'L-nope'"));
    }

    [Test]
    public async Task An_unreachable_registry_exits_3_with_an_actionable_message()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        var endpoint = $"tcp://127.0.0.1:{port}";

        var result = await Onex.RunAsync("--registry", endpoint, "--timeout", "0.3", "describe");

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Unavailable), result.ToString());
        Assert.That(result.Error, Does.Contain($"registry at {endpoint} did not answer within").And.Contain("is it running? start one with `onex registry serve`"));
    }

    [Test]
    public async Task Buses_list_json_lists_registered_buses()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterBusAsync("orders", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);

        var result = await Onex.RunAsync(Onex.At(registry, "buses", "list", "--json"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        using var json = JsonDocument.Parse(result.Output);
        Assert.That(json.RootElement.EnumerateArray().Select(b => (b.GetProperty("name").GetString(), b.GetProperty("kind").GetString())),
            Is.EqualTo(new[] { ("orders", BusKinds.Zmq) }));
    }

    [Test]
    public async Task Tools_show_prints_the_highest_version_with_its_schemas()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterToolAsync("greet", "1.9.0", NameSchema, NameSchema);
        await client.RegisterToolAsync("greet", "1.10.0", NameSchema, NameSchema, "the newer one");

        var result = await Onex.RunAsync(Onex.At(registry, "tools", "show", "greet"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        Assert.That(result.Output, Does.StartWith("greet 1.10.0").And.Contain("the newer one").And.Contain("\"required\""));
    }

    [Test]
    public async Task Tools_show_of_an_unknown_tool_exits_1()
    {
        await using var registry = await TestRegistry.StartAsync();

        var result = await Onex.RunAsync(Onex.At(registry, "tools", "show", "nothing"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Failed), result.ToString());
        Assert.That(result.Error, Does.Contain("no tool named 'nothing'"));
    }

    [TestCase("""{"name":"Ada"}""", ExitCodes.Ok, "valid:")]
    [TestCase("""{"name":5}""", ExitCodes.Failed, "invalid:")]
    [TestCase("""{"name":""", ExitCodes.Failed, "is not valid JSON")]
    public async Task Tools_validate_exits_by_whether_the_payload_satisfies_the_input_schema(string payload, int expectedExit, string expectedText)
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterToolAsync("greet", "1.0.0", NameSchema, """{"type":"string"}""");
        var file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"payload-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, payload);
        try
        {
            var result = await Onex.RunAsync(Onex.At(registry, "tools", "validate", "greet", file));

            Assert.That(result.ExitCode, Is.EqualTo(expectedExit), result.ToString());
            Assert.That(result.Output + result.Error, Does.Contain(expectedText));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task Tools_validate_output_uses_the_output_schema()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterToolAsync("greet", "1.0.0", NameSchema, """{"type":"string"}""");
        var file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"payload-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, "\"hello\"");
        try
        {
            var result = await Onex.RunAsync(Onex.At(registry, "tools", "validate", "greet", file, "--output"));

            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
            Assert.That(result.Output, Does.Contain("output schema"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task Tools_validate_of_an_unknown_tool_exits_1()
    {
        await using var registry = await TestRegistry.StartAsync();
        var file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"payload-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, "{}");
        try
        {
            var result = await Onex.RunAsync(Onex.At(registry, "tools", "validate", "nothing", file));

            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Failed), result.ToString());
            Assert.That(result.Error, Does.Contain("not found"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task Tools_validate_of_a_missing_file_is_a_usage_error()
    {
        await using var registry = await TestRegistry.StartAsync();
        var missing = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"missing-{Guid.NewGuid():N}.json");

        var result = await Onex.RunAsync(Onex.At(registry, "tools", "validate", "greet", missing));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
        Assert.That(result.Error, Does.Contain("cannot read"));
    }

    [Test]
    public async Task Watch_json_streams_the_snapshot_then_changes_until_cancelled()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var output = new CapturedOutput();
        var error = new StringWriter();
        using var stop = new CancellationTokenSource();

        var run = OnexCli.RunAsync(Onex.At(registry, "watch", "--json", "--prefix", "registry.bus."), output, error, TextReader.Null, cancellationToken: stop.Token);
        using (var first = JsonDocument.Parse(await output.NextLineAsync("the initial resync")))
            Assert.That(first.RootElement.GetProperty("kind").GetString(), Is.EqualTo("resynced"));
        await client.RegisterBusAsync("watched", BusKinds.Memory, ["memory://watched"]);
        var report = await LineReportingBusAsync(output, "watched");
        stop.Cancel();
        var exitCode = await run.Within("onex watch to stop when cancelled");

        Assert.That(report, Is.Not.Null, "the watch printed a line about the bus that was neither its registration nor a resync holding it");
        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error.ToString());
    }

    /// <summary>
    /// Reads watch lines until one reports bus <paramref name="bus"/>: its <c>busRegistered</c> change, or a resync whose
    /// snapshot holds it. The test registry heartbeats every 50 ms, so on a loaded machine the watch rightly reports
    /// "silent" (three late heartbeats are 150 ms) and "heard again" between any two lines, and a change it could not
    /// follow one by one (missed while its subscription was still connecting, or while silent) comes as a resync that
    /// says why: both are the watch's contract, so only an unrelated line is a failure.
    /// </summary>
    private static async Task<string?> LineReportingBusAsync(CapturedOutput output, string bus)
    {
        var seen = new List<string>();
        while (true)
        {
            var text = await output.NextLineAsync($"a line reporting bus '{bus}' (seen so far: {string.Join(" | ", seen)})");
            seen.Add(text);
            using var line = JsonDocument.Parse(text);
            var root = line.RootElement;
            switch (root.GetProperty("kind").GetString())
            {
                case "registrySilent" or "registryResumed":
                    continue;
                case "change" when root.GetProperty("change").GetProperty("changeType").GetString() == ChangeTypes.BusRegistered:
                    return text;
                case "resynced" when root.GetProperty("snapshot").GetProperty("buses").EnumerateArray()
                    .Any(b => b.GetProperty("name").GetString() == bus):
                    TestContext.Progress.WriteLine($"the bus registration arrived in a resync: {root.GetProperty("detail")}");
                    return text;
                case "resynced" or "epochChanged":
                    continue;
                default:
                    Assert.Fail($"unexpected watch line before the bus registration: {text}");
                    return null;
            }
        }
    }

    [Test]
    public async Task Help_documents_the_exit_codes()
    {
        var result = await Onex.RunAsync("--help");

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok));
        Assert.That(result.Output, Does.Contain("3 registry unavailable").And.Contain("4 registry refused"));
    }
}
