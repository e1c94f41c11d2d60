using System.Buffers;
using System.Diagnostics;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.Tests.Client;
using Onex.Tests.Registry;
using static Onex.Tests.Diagnostics.RegistryTracingTests;

namespace Onex.Tests.Diagnostics;

/// <summary>
/// The registry's server span ends with the outcome of the request it answered: status Error and <c>error.type</c> =
/// the protocol code for an Error reply (the tags the client span carries), unset for a success.
/// </summary>
public sealed class RegistryServerSpanTests
{
    [Test]
    public async Task A_refused_request_ends_its_server_span_with_error_status_and_the_code_its_client_span_carries()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var spans = new TraceRecorder();

        Assert.ThrowsAsync<NotFoundException>(async () => await client.ValidatePayloadAsync("no-such-tool", "{}"));

        var clientSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Client);
        var serverSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Server);
        Assert.Multiple(() =>
        {
            Assert.That(serverSpan.Status, Is.EqualTo(ActivityStatusCode.Error), "a request answered with an Error reply is a failed server span");
            Assert.That(serverSpan.GetTagItem("error.type"), Is.EqualTo(ErrorCodes.NotFound), "error.type carries the reply's protocol code");
            Assert.That(serverSpan.GetTagItem("error.type"), Is.EqualTo(clientSpan.GetTagItem("error.type")), "server and client spans name the same code");
            Assert.That(serverSpan.StatusDescription, Does.Contain("no-such-tool"), "the status carries the reply's message");
        });
    }

    [Test]
    public async Task A_request_that_succeeds_leaves_its_server_span_unset()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var spans = new TraceRecorder();

        await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Stats] });

        var serverSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Server);
        Assert.That((serverSpan.Status, serverSpan.GetTagItem("error.type")), Is.EqualTo((ActivityStatusCode.Unset, (object?)null)));
    }

    [Test]
    public async Task A_malformed_body_ends_its_server_span_with_error_status_malformed()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var dealer = new TestDealer(registry.Host.RouterEndpoint);
        using var spans = new TraceRecorder();

        // A PortRequest whose nodeId is a number: the envelope (and its traceparent) reads, the body does not.
        dealer.SendFrames(EnvelopeWithBody(nameof(PortRequest), "r1", dealer.ClientId, spans.TraceParent, (ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("nodeId");
            w.Write(5);
        }));
        var error = TestDealer.ExpectError(dealer.Receive());

        var serverSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Server);
        Assert.Multiple(() =>
        {
            Assert.That(error.Code, Is.EqualTo(ErrorCodes.Malformed), "the registry's reply");
            Assert.That(serverSpan.DisplayName, Is.EqualTo("registry PortRequest"));
            Assert.That(serverSpan.Status, Is.EqualTo(ActivityStatusCode.Error));
            Assert.That(serverSpan.GetTagItem("error.type"), Is.EqualTo(ErrorCodes.Malformed));
        });
    }

    [Test]
    public async Task A_refused_retry_answered_from_memory_ends_its_server_span_with_the_remembered_code()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var dealer = new TestDealer(registry.Host.RouterEndpoint);
        using var spans = new TraceRecorder();
        var frame = RegistryCodec.Encode("r1", dealer.ClientId, new NodeHeartbeat { NodeId = "ghost" }, traceParent: spans.TraceParent);

        dealer.SendFrames(frame);
        var first = TestDealer.ExpectError(dealer.Receive());
        dealer.SendFrames(frame);
        var retry = TestDealer.ExpectError(dealer.Receive());

        var serverSpans = spans.Stopped.Where(s => s.Kind == ActivityKind.Server).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That((first.Code, retry.Code), Is.EqualTo((ErrorCodes.NotFound, ErrorCodes.NotFound)), "the registry's replies");
            Assert.That(serverSpans.Select(s => (s.Status, s.GetTagItem("error.type"))),
                Is.EqualTo(new[] { (ActivityStatusCode.Error, (object?)ErrorCodes.NotFound), (ActivityStatusCode.Error, (object?)ErrorCodes.NotFound) }),
                "the first answer and the remembered one are both failed spans with the code");
        });
    }

    [Test]
    public void A_request_whose_handler_throws_ends_its_server_span_with_error_status_internal()
    {
        // A real RegistryServer on a loopback socket, serving a registry whose free check throws.
        using var h = new RegistryHarness();
        h.Availability.Throws = true;
        using var server = RegistryServer.Bind(RegistryNodeOptions.Default with { Endpoint = "tcp://127.0.0.1:0" }, curve: null, NullLogger.Instance);
        server.Start(h.Dispatcher, new RegistryServer.StoreBinding(
            new MemoryRegistryStore(), new DeferredChangeSink(h.Sink), () => (h.Registry, h.Dispatcher.Cache), TimeSpan.FromMinutes(10)));
        using var dealer = new TestDealer(server.Endpoint);
        using var spans = new TraceRecorder();

        dealer.SendFrames(RegistryCodec.Encode("r1", dealer.ClientId, new PortRequest { NodeId = "n1" }, traceParent: spans.TraceParent));
        var error = TestDealer.ExpectError(dealer.Receive());

        var serverSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Server);
        Assert.Multiple(() =>
        {
            Assert.That(error.Code, Is.EqualTo(ErrorCodes.Internal), "the registry's reply");
            Assert.That(serverSpan.Status, Is.EqualTo(ActivityStatusCode.Error));
            Assert.That(serverSpan.GetTagItem("error.type"), Is.EqualTo(ErrorCodes.Internal), "an unexpected failure is INTERNAL, not an exception's type name");
        });
    }

    private delegate void BodyWriter(ref MessagePackWriter writer);

    private static byte[] EnvelopeWithBody(string messageType, string requestId, string clientId, string traceParent, BodyWriter body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(6);
        w.Write("protocolVersion");
        w.Write(ProtocolVersion.Current);
        w.Write("messageType");
        w.Write(messageType);
        w.Write("requestId");
        w.Write(requestId);
        w.Write("clientId");
        w.Write(clientId);
        w.Write("traceparent");
        w.Write(traceParent);
        w.Write("body");
        body(ref w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
