using System.Collections.Concurrent;
using System.Diagnostics;
using Onex.Diagnostics;
using Onex.Protocol;
using Onex.Tests.Client;

namespace Onex.Tests.Diagnostics;

/// <summary>Registry requests traced from the client through the envelope's <c>traceparent</c> to the registry's server span.</summary>
public sealed class RegistryTracingTests
{
    [Test]
    public async Task The_registry_answers_inside_a_server_span_that_is_the_child_of_the_client_span()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var root = new Activity("registry tracing test").SetIdFormat(ActivityIdFormat.W3C).Start();
        var trace = root.TraceId;
        var stopped = new ConcurrentQueue<Activity>();
        // Only spans of this test's trace are sampled; other tests' requests stay untraced.
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == OnexRegistryDiagnostics.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
                options.TraceId == trace ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == trace) stopped.Enqueue(activity);
            },
        };
        ActivitySource.AddActivityListener(listener);

        await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Stats] });

        var spans = stopped.ToArray();
        var clientSpan = spans.Single(s => s.Kind == ActivityKind.Client);
        var serverSpan = spans.Single(s => s.Kind == ActivityKind.Server);
        Assert.Multiple(() =>
        {
            Assert.That(clientSpan.DisplayName, Is.EqualTo("registry IntrospectionRequest"));
            Assert.That(clientSpan.ParentSpanId, Is.EqualTo(root.SpanId), "the client span continues the caller's trace");
            Assert.That(serverSpan.ParentSpanId, Is.EqualTo(clientSpan.SpanId), "the registry's span is the client span's child");
            Assert.That(serverSpan.GetTagItem("onex.registry.client_id"), Is.EqualTo(client.ClientId));
        });
    }

    [Test]
    public async Task A_request_the_registry_refuses_ends_its_client_span_with_error_status_and_the_protocol_code()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var spans = new TraceRecorder();

        Assert.ThrowsAsync<Onex.Errors.NotFoundException>(async () => await client.ValidatePayloadAsync("no-such-tool", "{}"));

        var clientSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Client);
        Assert.Multiple(() =>
        {
            Assert.That(clientSpan.DisplayName, Is.EqualTo("registry ValidatePayload"));
            Assert.That(clientSpan.Status, Is.EqualTo(ActivityStatusCode.Error), "a refused request is a failed span");
            Assert.That(clientSpan.GetTagItem("error.type"), Is.EqualTo(Onex.Errors.ErrorCodes.NotFound), "error.type carries the protocol error code");
            Assert.That(clientSpan.StatusDescription, Is.Not.Empty, "the status says why");
        });
    }

    [Test]
    public async Task A_request_that_times_out_ends_its_client_span_with_error_status_unavailable()
    {
        using var silent = new ScriptedRegistry((_, _, _) => null);
        await using var client = await Onex.Transports.Registry.RegistryClient.ConnectAsync(new Onex.Transports.Registry.RegistryClientOptions
        {
            Endpoint = silent.Endpoint,
            PubEndpoint = "tcp://127.0.0.1:1", // never used: this client does not announce or watch
            AnnounceNode = false,
            DepartOnDispose = false,
            RequestTimeout = TimeSpan.FromMilliseconds(200),
            MaxAttempts = 2,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(20),
        });
        using var spans = new TraceRecorder();

        Assert.ThrowsAsync<Onex.Errors.UnavailableException>(async () => await client.DescribeAsync());

        var clientSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Client);
        Assert.Multiple(() =>
        {
            Assert.That(clientSpan.Status, Is.EqualTo(ActivityStatusCode.Error), "a request that got no answer is a failed span");
            Assert.That(clientSpan.GetTagItem("error.type"), Is.EqualTo(Onex.Errors.ErrorCodes.Unavailable));
        });
    }

    [Test]
    public async Task A_request_that_succeeds_leaves_its_client_span_unset()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var spans = new TraceRecorder();

        await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Stats] });

        var clientSpan = spans.Stopped.Single(s => s.Kind == ActivityKind.Client);
        Assert.That((clientSpan.Status, clientSpan.GetTagItem("error.type")), Is.EqualTo((ActivityStatusCode.Unset, (object?)null)));
    }

    /// <summary>Records the registry spans of one trace, started here as the test's root activity.</summary>
    internal sealed class TraceRecorder : IDisposable
    {
        private readonly Activity _root = new Activity("registry tracing test").SetIdFormat(ActivityIdFormat.W3C).Start();
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _stopped = new();

        public TraceRecorder()
        {
            var trace = _root.TraceId;
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == OnexRegistryDiagnostics.Name,
                Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
                    options.TraceId == trace ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
                ActivityStopped = activity =>
                {
                    if (activity.TraceId == trace) _stopped.Enqueue(activity);
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public Activity[] Stopped => _stopped.ToArray();

        /// <summary>The root's W3C <c>traceparent</c>, for an envelope a test writes itself.</summary>
        public string TraceParent => _root.Id!;

        public void Dispose()
        {
            _listener.Dispose();
            _root.Stop();
        }
    }

    [Test]
    public void An_envelope_traceparent_round_trips_and_a_bad_one_is_ignored()
    {
        const string traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        var body = new IntrospectionRequest();

        var traced = RegistryCodec.Decode(RegistryCodec.Encode("r1", "c1", body, traceParent: traceParent));
        var plain = RegistryCodec.Decode(RegistryCodec.Encode("r1", "c1", body));
        var tooLong = RegistryCodec.Decode(RegistryCodec.Encode("r1", "c1", body, traceParent: new string('0', OnexRegistryDiagnostics.MaxTraceParentLength + 1)));

        Assert.Multiple(() =>
        {
            Assert.That(traced.TraceParent, Is.EqualTo(traceParent));
            Assert.That(plain.TraceParent, Is.Null, "absent when not sent");
            Assert.That(tooLong.TraceParent, Is.Null, "an over-long value is ignored, not an error");
            Assert.That(tooLong.MessageType, Is.EqualTo(MessageTypes.Of<IntrospectionRequest>()), "the rest of the envelope is read");
        });
    }
}
