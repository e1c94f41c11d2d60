using System.Buffers;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>The rest of issue 10's error-contract rules, each as PROTOCOL.md now states it.</summary>
public class ErrorContractRemainderTests
{
    private delegate void BodyWriter(ref MessagePackWriter writer);

    private static RegistryEnvelope Dispatch(RegistryHarness h, byte[] frame) => TestDealer.DecodeReply(h.Dispatcher.Dispatch(frame));

    private static byte[] Envelope(string messageType, BodyWriter body, bool nonStringKeyFirst = false)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(nonStringKeyFirst ? 6 : 5);
        if (nonStringKeyFirst)
        {
            writer.Write(7);
            writer.Write("seven");
        }
        writer.Write("protocolVersion");
        writer.Write(ProtocolVersion.Current);
        writer.Write("messageType");
        writer.Write(messageType);
        writer.Write("requestId");
        writer.Write("r1");
        writer.Write("clientId");
        writer.Write("c1");
        writer.Write("body");
        body(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static Error ExpectMalformed(RegistryEnvelope reply, string field)
    {
        var error = TestDealer.ExpectError(reply);
        Assert.That((error.Code, error.Details.GetValueOrDefault("field")), Is.EqualTo((ErrorCodes.Malformed, field)), error.Message);
        Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("r1", "c1")));
        return error;
    }

    [Test]
    public void A_nil_body_is_malformed_naming_body()
    {
        using var h = new RegistryHarness();
        ExpectMalformed(Dispatch(h, Envelope("PortRequest", (ref MessagePackWriter w) => w.WriteNil())), "body");
    }

    [Test]
    public void A_ttl_of_two_to_the_63_names_the_field_without_a_dotnet_message()
    {
        using var h = new RegistryHarness();
        var reply = Dispatch(h, Envelope("PortRequest", (ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(2);
            w.Write("nodeId");
            w.Write("n1");
            w.Write("ttlMs");
            w.Write(1UL << 63);
        }));
        var error = ExpectMalformed(reply, "body.ttlMs");
        Assert.That(error.Message, Does.Not.Contain("Int64").And.Not.Contain("overflow").IgnoreCase);
        Assert.That(h.Registry.Leases.Count, Is.Zero);
    }

    [Test]
    public void A_nil_required_integer_names_the_field()
    {
        using var h = new RegistryHarness();
        var lease = h.Lease();
        var reply = Dispatch(h, Envelope("LeaseRenewal", (ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(3);
            w.Write("leaseId");
            w.Write(lease.LeaseId);
            w.Write("nodeId");
            w.Write("n1");
            w.Write("fencingToken");
            w.WriteNil();
        }));
        ExpectMalformed(reply, "body.fencingToken");
    }

    [Test]
    public void An_envelope_with_a_non_string_key_echoes_the_ids_it_could_read()
    {
        using var h = new RegistryHarness();
        var reply = Dispatch(h, Envelope("NodeHeartbeat", (ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("nodeId");
            w.Write("n1");
        }, nonStringKeyFirst: true));
        var error = TestDealer.ExpectError(reply);
        Assert.That(error.Code, Is.EqualTo(ErrorCodes.Malformed));
        Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("r1", "c1")), "section 5: ids that could be read are echoed");
    }

    [TestCase("a b")]
    [TestCase("a\nb")]
    public void Heartbeat_and_departure_of_an_invalid_node_id_are_invalid_argument(string nodeId)
    {
        using var h = new RegistryHarness();
        var heartbeat = h.Fails(r => r.Handle(new NodeHeartbeat { NodeId = nodeId }));
        var departure = h.Fails(r => r.Handle(new NodeDeparture { NodeId = nodeId }));
        Assert.That((heartbeat.Code, heartbeat.Details["field"]), Is.EqualTo((ErrorCodes.InvalidArgument, "nodeId")));
        Assert.That((departure.Code, departure.Details["field"]), Is.EqualTo((ErrorCodes.InvalidArgument, "nodeId")));
        var tooLong = h.Fails(r => r.Handle(new NodeHeartbeat { NodeId = new string('n', 300) }));
        Assert.That((tooLong.Code, tooLong.Details["max"]), Is.EqualTo((ErrorCodes.InvalidArgument, "256")));
    }

    [Test]
    public void A_remote_schema_ref_is_schema_invalid_and_never_fetched()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            foreach (var schema in new[]
            {
                """{"type":"object","properties":{"a":{"$ref":"http://127.0.0.1:PORT/a.json"}}}""",
                """{"type":"object","dependencies":{"a":{"$ref":"http://127.0.0.1:PORT/b.json"}}}""",
                """{"$ref":"http://127.0.0.1:PORT/c.json"}""",
            }.Select(text => text.Replace("PORT", port.ToString())))
            {
                var ex = h.Fails(r => r.Handle(ToolContracts.Registration("tool-a", inputSchema: schema)));
                Assert.That((ex.Code, ex.Details["field"]), Is.EqualTo((ErrorCodes.SchemaInvalid, "inputSchema")), schema);
            }
            Assert.That(listener.Pending(), Is.False, "the registry connected to a remote $ref");
        }
        finally
        {
            listener.Stop();
        }
    }

    [Test]
    public void Metadata_empty_after_null_is_the_same_metadata_and_no_change()
    {
        using var h = new RegistryHarness();
        h.Do(r => r.Handle(new NodeAnnouncement { NodeId = "n1", Metadata = null }));
        var again = h.Do(r => r.Handle(new NodeAnnouncement { NodeId = "n1", Metadata = new Dictionary<string, string>() }));
        Assert.That(again.Metadata, Is.Null, "null and {} are the same labels (PROTOCOL.md 6.2): the record keeps what it had");
    }
}
