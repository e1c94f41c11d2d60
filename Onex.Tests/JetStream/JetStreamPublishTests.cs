using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Onex.Errors;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>Publishing on <see cref="JetStreamEventBus"/>: acknowledged storage, subjects, deduplication, limits, reachability.</summary>
[TestFixture]
public sealed class JetStreamPublishTests : JetStreamServerTests
{
    [Test]
    public async Task Publish_completes_after_the_stream_stored_the_event()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));

        await bus.PublishAsync(OnexEvent.Create("orders.created", "x"u8.ToArray()));

        var stream = await Js.GetStreamAsync(bus.StreamName);
        Assert.That(stream.Info.State.Messages, Is.EqualTo(1), "the acknowledged event is not in the stream");
    }

    [Test]
    public async Task Event_is_stored_under_the_bus_subject_as_its_encoded_envelope()
    {
        var busName = UniqueBusName();
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, busName));
        var sent = OnexEvent.Create("orders.eu.created", "x"u8.ToArray(), eventType: "order.v1");

        await bus.PublishAsync(sent);

        var stored = await FetchStoredAsync(bus.StreamName, 1);
        Assert.Multiple(() =>
        {
            Assert.That(bus.StreamName, Is.EqualTo($"ONEX_{busName}"), "stream name");
            Assert.That(stored[0].Subject, Is.EqualTo($"onex.{busName}.orders.eu.created"), "subject");
            Assert.That(OnexEventCodec.Default.Decode(stored[0].Data), Is.EqualTo(sent).Using<OnexEvent>(SameEnvelope), "body");
            Assert.That(stored[0].MsgId, Is.EqualTo(sent.EventId), "Nats-Msg-Id header");
        });
    }

    [Test]
    public async Task Subscription_pattern_becomes_the_consumer_filter_token_for_token()
    {
        var busName = UniqueBusName();
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, busName));

        await using var subscription = await bus.SubscribeAsync("orders.*.created.>");

        var filters = new List<string>();
        await foreach (var consumer in Js.ListConsumersAsync(bus.StreamName))
            filters.Add(consumer.Info.Config.FilterSubject!);
        Assert.That(filters, Is.EqualTo(new[] { $"onex.{busName}.orders.*.created.>" }));
    }

    [Test]
    public async Task Retried_publish_of_the_same_event_is_stored_once()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        await using var subscription = await bus.SubscribeAsync("dedup.>");
        var evt = OnexEvent.Create("dedup.event", "once"u8.ToArray());

        await bus.PublishAsync(evt);
        await bus.PublishAsync(evt);
        await bus.PublishAsync(OnexEvent.Create("dedup.sentinel", ReadOnlyMemory<byte>.Empty));

        var first = await ReadWithinAsync(subscription.Reader, "the event");
        var second = await ReadWithinAsync(subscription.Reader, "the sentinel");
        var stream = await Js.GetStreamAsync(bus.StreamName);
        Assert.Multiple(() =>
        {
            Assert.That(stream.Info.State.Messages, Is.EqualTo(2), "stream should hold the event once plus the sentinel");
            Assert.That(first.EventId, Is.EqualTo(evt.EventId), "first delivery");
            Assert.That(second.Topic, Is.EqualTo("dedup.sentinel"), "the duplicate was delivered before the sentinel");
        });
    }

    [Test]
    public async Task One_MiB_payload_is_stored_and_delivered_intact()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        await using var subscription = await bus.SubscribeAsync("blob.>");
        var payload = new byte[1024 * 1024];
        new Random(7).NextBytes(payload);

        await bus.PublishAsync(OnexEvent.Create("blob.put", payload));

        var received = await ReadWithinAsync(subscription.Reader, "the 1 MiB event");
        Assert.That(received.Payload.Span.SequenceEqual(payload), Is.True, "the 1 MiB payload changed in transit");
    }

    [Test]
    public async Task Event_above_the_bus_limit_fails_with_TOO_LARGE_and_is_not_stored()
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));

        var error = Assert.ThrowsAsync<MessageTooLargeException>(
            async () => await bus.PublishAsync(OnexEvent.Create("blob.put", new byte[2 * 1024 * 1024])));

        var stream = await Js.GetStreamAsync(bus.StreamName);
        Assert.Multiple(() =>
        {
            Assert.That(error!.Code, Is.EqualTo(ErrorCodes.TooLarge));
            Assert.That(error.Details["limit"], Is.Not.Empty, "the error should state the limit");
            Assert.That(stream.Info.State.Messages, Is.Zero, "a refused event must not be stored");
        });
    }

    [Test]
    public async Task Server_with_the_default_max_payload_refuses_a_1_MiB_event_with_TOO_LARGE()
    {
        await using var smallServer = await NatsServerFixture.StartAsync(maxPayloadBytes: 1024 * 1024);
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(smallServer, UniqueBusName()));

        var error = Assert.ThrowsAsync<MessageTooLargeException>(
            async () => await bus.PublishAsync(OnexEvent.Create("blob.put", new byte[1024 * 1024])));

        Assert.That(error!.Message, Does.Contain("max_payload"), "the error should point at the server's max_payload");
    }

    [Test]
    public async Task Unreachable_server_fails_fast_with_UNAVAILABLE_naming_the_url()
    {
        var closedPort = (await TestPorts.LeaseAsync(1))[0];
        var url = $"nats://127.0.0.1:{closedPort}";
        var elapsed = Stopwatch.StartNew();

        var error = Assert.ThrowsAsync<UnavailableException>(async () =>
            await JetStreamEventBus.ConnectAsync(JetStreamEventBusOptions.Default with { Url = url, ConnectTimeout = TimeSpan.FromSeconds(2) }));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Code, Is.EqualTo(ErrorCodes.Unavailable));
            Assert.That(error.Message, Does.Contain(url), "the message should name the server");
            Assert.That(error.Details["url"], Is.EqualTo(url));
            Assert.That(elapsed.Elapsed, Is.LessThan(TimeSpan.FromSeconds(3)), "a refused connection should fail within the connect timeout");
        });
    }

    [Test]
    public async Task Server_that_never_answers_fails_within_the_connect_timeout()
    {
        // Accepts TCP connections but never speaks NATS: the connect must give up, not hang.
        var port = (await TestPorts.LeaseAsync(1))[0];
        var silent = new TcpListener(IPAddress.Loopback, port);
        silent.Start();
        try
        {
            var url = $"nats://127.0.0.1:{port}";
            var elapsed = Stopwatch.StartNew();

            var error = Assert.ThrowsAsync<UnavailableException>(async () =>
                await JetStreamEventBus.ConnectAsync(JetStreamEventBusOptions.Default with { Url = url, ConnectTimeout = TimeSpan.FromSeconds(1) }));

            Assert.Multiple(() =>
            {
                Assert.That(error!.Message, Does.Contain(url));
                Assert.That(elapsed.Elapsed, Is.LessThan(TimeSpan.FromSeconds(4)), "connect did not respect its timeout");
            });
        }
        finally
        {
            silent.Stop();
        }
    }

    [Test]
    public async Task Disposing_with_DeleteStreamOnDispose_removes_the_stream()
    {
        var bus = await JetStreamEventBus.ConnectAsync(Options(Server, UniqueBusName()));
        await bus.PublishAsync(OnexEvent.Create("gone.soon", ReadOnlyMemory<byte>.Empty));

        await bus.DisposeAsync();

        var error = Assert.ThrowsAsync<NatsJSApiException>(async () => await Js.GetStreamAsync(bus.StreamName));
        Assert.That(error!.Error.Code, Is.EqualTo(404), "the stream should be gone");
    }

    [Test]
    public async Task Disposing_by_default_keeps_the_stream_and_its_events_for_the_next_instance()
    {
        var options = Options(Server, UniqueBusName()) with { DeleteStreamOnDispose = false };
        await using (var first = await JetStreamEventBus.ConnectAsync(options))
            await first.PublishAsync(OnexEvent.Create("kept.event", ReadOnlyMemory<byte>.Empty));

        await using var second = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = true });

        var stream = await Js.GetStreamAsync(second.StreamName);
        Assert.That(stream.Info.State.Messages, Is.EqualTo(1), "the stream and its event should outlive the first bus instance");
    }

    [Test]
    public async Task Bus_names_that_differ_only_in_punctuation_use_different_streams()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        await using var dotted = await JetStreamEventBus.ConnectAsync(Options(Server, $"team.{suffix}"));
        await using var underscored = await JetStreamEventBus.ConnectAsync(Options(Server, $"team_{suffix}"));

        await dotted.PublishAsync(OnexEvent.Create("only.here", ReadOnlyMemory<byte>.Empty));

        var underscoredStream = await Js.GetStreamAsync(underscored.StreamName);
        Assert.Multiple(() =>
        {
            Assert.That(dotted.StreamName, Is.Not.EqualTo(underscored.StreamName));
            Assert.That(underscored.StreamName, Is.EqualTo($"ONEX_team_{suffix}"), "a plain name is used as it is");
            Assert.That(underscoredStream.Info.State.Messages, Is.Zero, "an event of one bus landed in the other's stream");
        });
    }

    [TestCase("")]
    [TestCase("has space")]
    [TestCase("wild.*")]
    public void Invalid_bus_name_is_rejected_before_connecting(string name)
    {
        Assert.ThrowsAsync<ArgumentException>(async () =>
            await JetStreamEventBus.ConnectAsync(Options(Server, "unused") with { Name = name }));
    }

    private static bool SameEnvelope(OnexEvent a, OnexEvent b) =>
        a.EventId == b.EventId && a.Topic == b.Topic && a.EventType == b.EventType && a.Timestamp == b.Timestamp
        && a.Payload.Span.SequenceEqual(b.Payload.Span);

    private async Task<List<(string Subject, byte[] Data, string? MsgId)>> FetchStoredAsync(string stream, int count)
    {
        var consumer = await Js.CreateOrUpdateConsumerAsync(stream, new ConsumerConfig
        {
            Name = "inspect_" + Guid.NewGuid().ToString("N"),
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
            AckPolicy = ConsumerConfigAckPolicy.None,
            MemStorage = true,
            InactiveThreshold = TimeSpan.FromSeconds(30),
        });
        var stored = new List<(string, byte[], string?)>();
        await foreach (var msg in consumer.FetchAsync(new NatsJSFetchOpts { MaxMsgs = count, Expires = WaitLimit }, NatsRawSerializer<byte[]>.Default))
        {
            string? msgId = msg.Headers is { } headers && headers.TryGetValue("Nats-Msg-Id", out var id) ? id.ToString() : null;
            stored.Add((msg.Subject, msg.Data ?? [], msgId));
        }
        Assert.That(stored, Has.Count.EqualTo(count), "events stored in the stream");
        return stored;
    }
}
