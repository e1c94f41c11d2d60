using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>What a real registry node refuses, as the client surfaces it; and idempotent retries at the protocol level.</summary>
public class RegistryErrorTests
{
    private const string NameSchema = """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""";
    private const string OtherSchema = """{"type":"object","properties":{"id":{"type":"integer"}}}""";

    [Test]
    public async Task Validating_against_an_unknown_tool_is_not_found()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        var ex = Assert.ThrowsAsync<NotFoundException>(async () => await client.ValidatePayloadAsync("no-such-tool", "{}"));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.NotFound));
    }

    [Test]
    public async Task Registering_a_different_contract_under_the_same_name_and_version_is_a_conflict()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterToolAsync("greet", "1.0.0", NameSchema, NameSchema);

        var ex = Assert.ThrowsAsync<ContractConflictException>(async () => await client.RegisterToolAsync("greet", "1.0.0", OtherSchema, NameSchema));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.ContractConflict));
    }

    [Test]
    public async Task Registering_a_tool_with_an_invalid_schema_is_schema_invalid()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        var ex = Assert.ThrowsAsync<SchemaInvalidException>(async () => await client.RegisterToolAsync("broken", "1.0.0", "{not json", NameSchema));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.SchemaInvalid));
    }

    [Test]
    public async Task A_request_over_the_frame_limit_is_too_large_at_once_and_the_client_goes_on_working()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        // 2 MiB of schema: over the registry's receive limit (1 MiB + 64 KiB), where it would cut the connection unanswered.
        var huge = $$"""{"type":"object","description":"{{new string('x', 2 * RegistryCodec.MaxFrameBytes)}}"}""";

        var ex = Assert.ThrowsAsync<MessageTooLargeException>(async () => await client.RegisterToolAsync("huge", "1.0.0", huge, NameSchema));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.TooLarge));
        Assert.That(ex.Details["limit"], Is.EqualTo(RegistryCodec.MaxFrameBytes.ToString()));
        Assert.That(long.Parse(ex.Details["size"]), Is.GreaterThan(2L * RegistryCodec.MaxFrameBytes));
        Assert.That((await client.RegisterToolAsync("greet", "1.0.0", NameSchema, NameSchema)).Name, Is.EqualTo("greet"));
    }

    [Test]
    public async Task Registering_a_bus_of_an_unknown_kind_is_an_invalid_argument_naming_the_field()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        var ex = Assert.CatchAsync<OnexException>(async () => await client.RegisterBusAsync("b", "carrier-pigeon", ["tcp://127.0.0.1:1"]));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("kind"));
    }

    [Test]
    public async Task An_invalid_payload_is_a_result_with_errors_not_an_exception()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await client.RegisterToolAsync("greet", "1.0.0", NameSchema, NameSchema);

        var result = await client.ValidatePayloadAsync("greet", """{"name": 5}""");

        Assert.That(result.Valid, Is.False);
        Assert.That(result.Errors, Is.Not.Empty);
        Assert.That((result.ToolName, result.Version), Is.EqualTo(("greet", "1.0.0")));
    }

    [Test]
    public async Task The_same_request_id_sent_twice_grants_one_lease()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await registry.ConnectAsync();
        using var dealer = new DealerSocket();
        dealer.Connect(registry.Host.RouterEndpoint);
        var request = RegistryCodec.Encode("r-1", "raw-client", new PortRequest { NodeId = observer.NodeId });

        var replies = new List<PortGrant>();
        for (var i = 0; i < 2; i++)
        {
            dealer.SendFrame(request);
            Assert.That(dealer.TryReceiveFrameBytes(TimeSpan.FromSeconds(5), out var frame), Is.True, $"no reply to send {i + 1}");
            replies.Add(RegistryCodec.Decode(frame!).BodyAs<PortGrant>());
        }

        Assert.That(replies[1].Leases.Single().LeaseId, Is.EqualTo(replies[0].Leases.Single().LeaseId), "the retry must be answered from the reply cache");
        var leases = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = observer.NodeId });
        Assert.That(leases.Leases, Has.Count.EqualTo(1));
    }
}
