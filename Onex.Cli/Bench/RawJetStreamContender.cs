using System.Diagnostics;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Onex.Transports.JetStream;

namespace Onex.Cli.Bench;

/// <summary>
/// The JetStream baseline: NATS.Net used directly, on a stream of its own configured like a bus's (file storage,
/// same limits), over two connections like the bus's two participants. Throughput: one connection publishes the
/// payload awaiting each PubAck with the same number in flight as the bus publisher; the other consumes an ephemeral
/// pull consumer (explicit acks, <c>ConsumeAsync</c> with its defaults) and acknowledges every message. Round trip:
/// publish on ping, the other side consumes, acknowledges and publishes on pong, the first consumes and acknowledges.
/// No message id header (the bus sends one for de-duplication), no envelope.
/// </summary>
internal sealed class RawJetStreamContender : IBenchContender
{
    // JetStream API error codes (nats-server's errors.json).
    private const int StreamNotFound = 10059;
    private const int ConsumerNotFound = 10014;

    private readonly NatsConnection _publisherConnection;
    private readonly NatsConnection _subscriberConnection;
    private readonly NatsJSContext _publisher;
    private readonly NatsJSContext _subscriber;
    private readonly byte[] _payload;
    private readonly int _inFlight;
    private readonly TimeSpan _quietPeriod;
    private readonly string _stream;
    private readonly string _subjectPrefix;

    private RawJetStreamContender(NatsConnection publisher, NatsConnection subscriber, byte[] payload, int inFlight, TimeSpan quietPeriod)
    {
        _publisherConnection = publisher;
        _subscriberConnection = subscriber;
        _publisher = new NatsJSContext(publisher);
        _subscriber = new NatsJSContext(subscriber);
        _payload = payload;
        _inFlight = inFlight;
        _quietPeriod = quietPeriod;
        var id = Guid.NewGuid().ToString("N")[..8];
        _stream = $"ONEXBENCH_RAW_{id}";
        _subjectPrefix = $"onexbenchraw.{id}";
    }

    public string Description => "raw NATS.Net JetStream (PubAck per publish, pull consumer with acks)";

    /// <summary>Connects twice to <paramref name="url"/> and creates the stream, configured as a bus would.</summary>
    public static async Task<RawJetStreamContender> CreateAsync(
        string url, byte[] payload, int inFlight, TimeSpan quietPeriod, CancellationToken cancellationToken)
    {
        var publisher = new NatsConnection(NatsOpts.Default with { Url = url, Name = "onex-bench-raw-pub" });
        var subscriber = new NatsConnection(NatsOpts.Default with { Url = url, Name = "onex-bench-raw-sub" });
        var contender = new RawJetStreamContender(publisher, subscriber, payload, inFlight, quietPeriod);
        try
        {
            await publisher.ConnectAsync().ConfigureAwait(false);
            await subscriber.ConnectAsync().ConfigureAwait(false);
            // The same stream settings the bus declares, so the baseline differs only in what the bus adds.
            await contender._publisher.CreateStreamAsync(
                JetStreamEventBusOptions.Default.ToStreamConfig(contender._stream, $"{contender._subjectPrefix}.>"), cancellationToken).ConfigureAwait(false);
            return contender;
        }
        catch
        {
            await contender.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken)
    {
        var subject = $"{_subjectPrefix}.data";
        var consumer = await CreateConsumerAsync(_subscriber, subject, cancellationToken).ConfigureAwait(false);
        try
        {
            using var stopReader = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var progress = new ReadProgress();
            var reader = Task.Run(() => ConsumeAsync(consumer, count, progress, stopReader.Token), CancellationToken.None);

            var started = Stopwatch.GetTimestamp();
            await BenchLoops.PublishWindowedAsync(count, _inFlight, () => PublishAsync(_publisher, subject, _payload, cancellationToken))
                .ConfigureAwait(false);
            await BenchLoops.AwaitReaderAsync(reader, progress, _quietPeriod, stopReader, cancellationToken).ConfigureAwait(false);
            return progress.ToSample(count, started);
        }
        finally
        {
            await DeleteConsumerAsync(_subscriber, consumer).ConfigureAwait(false);
        }
    }

    public async Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken)
    {
        var pingSubject = $"{_subjectPrefix}.ping";
        var pongSubject = $"{_subjectPrefix}.pong";
        var pings = await CreateConsumerAsync(_subscriber, pingSubject, cancellationToken).ConfigureAwait(false);
        var pongs = await CreateConsumerAsync(_publisher, pongSubject, cancellationToken).ConfigureAwait(false);
        try
        {
            using var responder = BenchResponder.Start(async stop =>
            {
                await foreach (var ping in pings.ConsumeAsync(NatsRawSerializer<byte[]>.Default, cancellationToken: stop).ConfigureAwait(false))
                {
                    await ping.AckAsync(cancellationToken: stop).ConfigureAwait(false);
                    await PublishAsync(_subscriber, pongSubject, ping.Data!, stop).ConfigureAwait(false);
                }
            }, cancellationToken, out var pingerToken);

            var samples = new long[count];
            try
            {
                await using var replies = pongs.ConsumeAsync(NatsRawSerializer<byte[]>.Default, cancellationToken: pingerToken)
                    .GetAsyncEnumerator(pingerToken);
                for (var i = 0; i < count; i++)
                {
                    var started = Stopwatch.GetTimestamp();
                    await PublishAsync(_publisher, pingSubject, _payload, pingerToken).ConfigureAwait(false);
                    if (!await replies.MoveNextAsync().ConfigureAwait(false))
                        throw new InvalidOperationException("The raw JetStream pong consumer ended.");
                    await replies.Current.AckAsync(cancellationToken: pingerToken).ConfigureAwait(false);
                    samples[i] = Stopwatch.GetTimestamp() - started;
                }
            }
            finally
            {
                await responder.StopAsync().ConfigureAwait(false);
            }
            return samples;
        }
        finally
        {
            await DeleteConsumerAsync(_subscriber, pings).ConfigureAwait(false);
            await DeleteConsumerAsync(_publisher, pongs).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_publisherConnection.ConnectionState == NatsConnectionState.Open)
        {
            try
            {
                await _publisher.DeleteStreamAsync(_stream).ConfigureAwait(false);
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode == StreamNotFound)
            {
                // Never created (the set-up failed before) or already gone: nothing to clean up.
            }
        }
        await _publisherConnection.DisposeAsync().ConfigureAwait(false);
        await _subscriberConnection.DisposeAsync().ConfigureAwait(false);
    }

    private static async ValueTask PublishAsync(NatsJSContext js, string subject, byte[] data, CancellationToken cancellationToken)
    {
        var ack = await js.PublishAsync(subject, data, NatsRawSerializer<byte[]>.Default, cancellationToken: cancellationToken).ConfigureAwait(false);
        ack.EnsureSuccess();
    }

    private static async Task ConsumeAsync(INatsJSConsumer consumer, int count, ReadProgress progress, CancellationToken cancellationToken)
    {
        long received = 0;
        await foreach (var msg in consumer.ConsumeAsync(NatsRawSerializer<byte[]>.Default, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            await msg.AckAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            progress.Update(++received, Stopwatch.GetTimestamp());
            if (received == count) return;
        }
    }

    /// <summary>An ephemeral pull consumer like a bus subscription's: explicit acks, new messages only, state in memory.</summary>
    private async Task<INatsJSConsumer> CreateConsumerAsync(NatsJSContext js, string subject, CancellationToken cancellationToken)
    {
        var options = JetStreamEventBusOptions.Default;
        return await js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig
        {
            Name = $"raw_{Guid.NewGuid():N}",
            FilterSubject = subject,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            AckWait = options.AckWait,
            DeliverPolicy = ConsumerConfigDeliverPolicy.New,
            InactiveThreshold = options.EphemeralInactiveThreshold,
            MemStorage = true,
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task DeleteConsumerAsync(NatsJSContext js, INatsJSConsumer consumer)
    {
        try
        {
            await js.DeleteConsumerAsync(_stream, consumer.Info.Name).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == ConsumerNotFound)
        {
            // Already gone; nothing to clean up.
        }
    }
}
