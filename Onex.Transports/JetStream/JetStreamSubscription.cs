using System.Runtime.CompilerServices;
using System.Threading.Channels;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Polly;
using Polly.Retry;

namespace Onex.Transports.JetStream;

/// <summary>
/// One subscription of a <see cref="JetStreamEventBus"/>: a pull consumer on the bus's stream, a pump that pulls
/// events into the subscription's <see cref="EventChannel"/>, and the acknowledgement rules of
/// <see cref="AcknowledgingReader"/>.
/// </summary>
/// <remarks>
/// Flow control: in <see cref="BoundedChannelFullMode.Wait"/> mode a pull asks for at most the free room in the
/// queue (at least one event, which then waits for room), so a slow reader holds back the server instead of
/// piling up events that would outlive <c>AckWait</c>. In drop modes the pump keeps pulling and the queue drops;
/// a dropped event is never acknowledged, so the server delivers it again after <c>AckWait</c>.
/// </remarks>
internal sealed class JetStreamSubscription : IEventSubscription
{
    // Under NATS.Net's 1000-message fetch buffer, so a full batch never blocks the connection's read loop.
    private const int MaxPullBatch = 512;

    private readonly JetStreamEventBus _bus;
    private readonly EventChannel _queue;
    private readonly AcknowledgingReader _reader;
    private readonly ConditionalWeakTable<OnexEvent, Delivery> _deliveries = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ResiliencePipeline _pullPipeline;
    private readonly Lock _handGate = new();
    private readonly string _consumerName;
    private readonly bool _durable;
    private readonly string _filterSubject;
    private INatsJSConsumer? _consumer;
    private DateTimeOffset _streamCreated;
    private ulong _lastStreamSequence;
    private volatile bool _recheckConsumer;
    // Completed (and replaced) on each reconnection; _attemptReconnected is the one current when the last pull began.
    private TaskCompletionSource _reconnected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _attemptReconnected = Task.CompletedTask;
    private volatile bool _closing;
    private OnexEvent? _handedOut;
    private TaskCompletionSource? _closed;
    private Task _pump = Task.CompletedTask;
    // Acknowledgements sent and not yet confirmed by the server (double acks); closing waits for them.
    private readonly HashSet<Task> _unconfirmedAcks = [];

    public JetStreamSubscription(JetStreamEventBus bus, EventChannel queue)
    {
        _bus = bus;
        _queue = queue;
        _reader = new AcknowledgingReader(this, queue.Reader);
        _durable = queue.Options.DurableName is not null;
        _consumerName = _durable
            ? JetStreamNames.DurableConsumerName(queue.Options.DurableName!)
            : JetStreamNames.EphemeralConsumerName();
        _filterSubject = bus.Names.SubjectFor(queue.Pattern);
        _pullPipeline = new ResiliencePipelineBuilder { TimeProvider = bus.Time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => !(ex is OperationCanceledException && _stop.IsCancellationRequested)),
                MaxRetryAttempts = int.MaxValue,
                // The wait between attempts is OnRetry's (BackOffAsync), so that a reconnection can end it early.
                BackoffType = DelayBackoffType.Constant,
                Delay = TimeSpan.Zero,
                OnRetry = async args =>
                {
                    _recheckConsumer = true;
                    var delay = PullBackoff(args.AttemptNumber);
                    if (args.Outcome.Exception is { } failure)
                        JetStreamLog.PullFailed(_bus.Logger, failure, _consumerName, args.AttemptNumber + 1, delay);
                    await BackOffAsync(delay, args.Context.CancellationToken).ConfigureAwait(false);
                },
            })
            .Build();
    }

    /// <inheritdoc/>
    public string Pattern => _queue.Pattern;

    /// <inheritdoc/>
    public ChannelReader<OnexEvent> Reader => _reader;

    /// <inheritdoc/>
    public long DroppedCount => _queue.DroppedCount;

    /// <inheritdoc/>
    public long PendingBytes => _queue.PendingBytes;

    internal bool IsClosing => _closing;

    /// <summary>Creates (or, for a durable name, finds) the consumer and starts pulling.</summary>
    public async ValueTask StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _streamCreated = _bus.StreamCreated;
            _consumer = _durable
                ? await OpenDurableConsumerAsync(cancellationToken).ConfigureAwait(false)
                : await CreateConsumerAsync(ConsumerConfigDeliverPolicy.New, 0, cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.StreamNotFound)
        {
            // The server lost the stream since the bus declared it (a memory stream after a restart).
            await _bus.EnsureStreamAsync(cancellationToken).ConfigureAwait(false);
            _streamCreated = _bus.StreamCreated;
            _consumer = await CreateConsumerAsync(ConsumerConfigDeliverPolicy.New, 0, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException)
        {
            throw _bus.Translate(ex, $"create a consumer for pattern '{Pattern}'");
        }

        // Where this consumer starts: lets a lost consumer be re-made without skipping or repeating events.
        _lastStreamSequence = _consumer.Info.Delivered.StreamSeq;
        JetStreamLog.SubscriptionStarted(_bus.Logger, Pattern, _consumerName, _durable, _lastStreamSequence + 1);
        _pump = Task.Run(PumpAsync);
    }

    /// <summary>
    /// Enumerates events until the subscription is disposed. Asking for the next event acknowledges the previous
    /// one. Cancelling <paramref name="cancellationToken"/> ends this enumeration; the subscription stays open.
    /// </summary>
    public IAsyncEnumerator<OnexEvent> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);

    /// <summary>
    /// Acknowledges the event the reader holds, returns events it never received to the server (a durable consumer
    /// redelivers them at once), removes an ephemeral consumer and completes reads. Idempotent.
    /// </summary>
    public ValueTask DisposeAsync() => CloseAsync(acknowledgeHandedOut: true);

    /// <summary>Closes like <see cref="DisposeAsync"/> but returns the held event unacknowledged too (bus disposal).</summary>
    internal ValueTask AbandonAsync() => CloseAsync(acknowledgeHandedOut: false);

    /// <summary>The connection was re-established: the server may have lost the consumer, so check before the next pull.</summary>
    internal void OnReconnected()
    {
        _recheckConsumer = true;
        // Ends a back-off between failed pulls at once: the server is back, so the next pull should not wait seconds.
        Interlocked.Exchange(ref _reconnected, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>Exponential from 100 ms, at most 5 s, each between half and all of it (jitter spreads many subscriptions).</summary>
    private static TimeSpan PullBackoff(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(100 * Math.Pow(2, Math.Min(attempt, 16)), 5_000) * (0.5 + Random.Shared.NextDouble() / 2));

    /// <summary>Waits <paramref name="delay"/>, or less when the connection was re-established since the failed pull began.</summary>
    private async ValueTask BackOffAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        await Task.WhenAny(Task.Delay(delay, _bus.Time, cancellationToken), _attemptReconnected).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    internal bool TryHandOut(out OnexEvent item)
    {
        OnexEvent? previous;
        bool got;
        lock (_handGate)
        {
            if (_closing)
            {
                item = null!;
                return false;
            }
            previous = _handedOut;
            got = _queue.Reader.TryRead(out item!);
            _handedOut = got ? item : null;
        }
        if (previous is not null) Acknowledge(previous);
        return got;
    }

    internal void AcknowledgeHandedOut()
    {
        OnexEvent? previous;
        lock (_handGate)
        {
            previous = _handedOut;
            _handedOut = null;
        }
        if (previous is not null) Acknowledge(previous);
    }

    private async IAsyncEnumerable<OnexEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (await _reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (_reader.TryRead(out var evt))
                yield return evt;
        }
    }

    private async ValueTask<INatsJSConsumer> OpenDurableConsumerAsync(CancellationToken cancellationToken)
    {
        ConsumerConfig? existing = null;
        try
        {
            existing = (await _bus.JetStream.GetConsumerAsync(_bus.StreamName, _consumerName, cancellationToken).ConfigureAwait(false)).Info.Config;
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.ConsumerNotFound)
        {
            // First subscription under this durable name.
        }

        // An existing durable keeps its start position (the server refuses to change it); the rest is updated.
        return existing is null
            ? await CreateConsumerAsync(ConsumerConfigDeliverPolicy.New, 0, cancellationToken).ConfigureAwait(false)
            : await CreateConsumerAsync(existing.DeliverPolicy, existing.OptStartSeq, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask<INatsJSConsumer> CreateConsumerAsync(ConsumerConfigDeliverPolicy deliverPolicy, ulong startSequence, CancellationToken cancellationToken)
    {
        var options = _bus.Options;
        var config = new ConsumerConfig
        {
            Name = _consumerName,
            FilterSubject = _filterSubject,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            AckWait = options.AckWait,
            MaxDeliver = options.MaxDeliver,
            DeliverPolicy = deliverPolicy,
            ReplayPolicy = ConsumerConfigReplayPolicy.Instant,
            Description = $"OnexBus subscription '{Pattern}'",
        };
        if (deliverPolicy == ConsumerConfigDeliverPolicy.ByStartSequence)
            config.OptStartSeq = startSequence;
        if (_durable)
        {
            config.DurableName = _consumerName;
        }
        else
        {
            config.InactiveThreshold = options.EphemeralInactiveThreshold;
            config.MemStorage = true;
        }
        return _bus.JetStream.CreateOrUpdateConsumerAsync(_bus.StreamName, config, cancellationToken);
    }

    private async Task PumpAsync()
    {
        var token = _stop.Token;
        try
        {
            while (!token.IsCancellationRequested && !_queue.IsCompleted)
                await _pullPipeline.ExecuteAsync(static (self, ct) => self.PullOnceAsync(ct), this, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Closed.
        }
        catch (Exception ex)
        {
            // The retry pipeline handles every failure it can; anything else ends the subscription visibly.
            JetStreamLog.PumpStopped(_bus.Logger, ex, _consumerName);
            _queue.TryComplete(_bus.Translate(ex, $"keep reading consumer {_consumerName}"));
        }
    }

    private async ValueTask PullOnceAsync(CancellationToken cancellationToken)
    {
        _attemptReconnected = Volatile.Read(ref _reconnected).Task;
        if (_recheckConsumer)
        {
            _recheckConsumer = false;
            await EnsureConsumerAsync(cancellationToken).ConfigureAwait(false);
        }

        var expiry = _bus.Options.PullExpiry;
        var fetch = new NatsJSFetchOpts
        {
            MaxMsgs = NextBatchSize(),
            Expires = expiry,
            IdleHeartbeat = TimeSpan.FromTicks(Math.Clamp(expiry.Ticks / 4, TimeSpan.TicksPerSecond / 2, 5 * TimeSpan.TicksPerSecond)),
        };
        var received = 0;
        await foreach (var msg in _consumer!.FetchAsync(fetch, NatsRawSerializer<byte[]>.Default, cancellationToken).ConfigureAwait(false))
        {
            received++;
            if (!await DeliverAsync(msg, cancellationToken).ConfigureAwait(false)) return;
        }

        // An empty pull is normal when idle, but also what a vanished consumer looks like: check it before the next.
        if (received == 0) _recheckConsumer = true;
    }

    private int NextBatchSize()
    {
        var capacity = _queue.Options.Capacity;
        return _queue.FullMode == BoundedChannelFullMode.Wait
            ? Math.Clamp(capacity - _queue.Reader.Count, 1, MaxPullBatch)
            : Math.Min(capacity, MaxPullBatch);
    }

    /// <summary>Queues one pulled message; false when the subscription closed meanwhile.</summary>
    private async ValueTask<bool> DeliverAsync(INatsJSMsg<byte[]> msg, CancellationToken cancellationToken)
    {
        var sequence = msg.Metadata?.Sequence.Stream ?? 0;
        if (sequence > _lastStreamSequence) _lastStreamSequence = sequence;

        OnexEvent evt;
        try
        {
            if (msg.Data is not { Length: > 0 } data)
                throw new MalformedMessageException("the message is empty");
            evt = _bus.Options.Codec.Decode(data);
            if (!_bus.Names.IsSubjectOf(msg.Subject, evt.Topic))
                throw new MalformedMessageException($"its topic '{evt.Topic}' does not match the subject");
        }
        catch (OnexException ex)
        {
            // Redelivering it would fail the same way forever.
            JetStreamLog.MalformedEvent(_bus.Logger, msg.Subject, sequence, ex.Message);
            Settle(msg.AckTerminateAsync(), "terminate a malformed message");
            return true;
        }

        _deliveries.AddOrUpdate(evt, new Delivery(msg));
        if (_queue.TryWrite(evt)) return true;
        bool queued;
        try
        {
            queued = await _queue.WriteAsync(evt, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Release(evt);
            throw;
        }
        if (!queued) Release(evt);
        return queued;
    }

    private async ValueTask EnsureConsumerAsync(CancellationToken cancellationToken)
    {
        try
        {
            _consumer = await _bus.JetStream.GetConsumerAsync(_bus.StreamName, _consumerName, cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode is JetStreamErrors.ConsumerNotFound or JetStreamErrors.StreamNotFound)
        {
            var stream = await _bus.EnsureStreamAsync(cancellationToken).ConfigureAwait(false);
            var newStream = stream.Created != _streamCreated;
            _streamCreated = stream.Created;
            // A re-made stream starts its sequence again: everything in it is new to this subscription.
            _consumer = newStream
                ? await CreateConsumerAsync(ConsumerConfigDeliverPolicy.All, 0, cancellationToken).ConfigureAwait(false)
                : await CreateConsumerAsync(ConsumerConfigDeliverPolicy.ByStartSequence, _lastStreamSequence + 1, cancellationToken).ConfigureAwait(false);
            JetStreamLog.ConsumerRecreated(_bus.Logger, _consumerName, _bus.StreamName,
                newStream ? "the start of the re-made stream" : $"stream sequence {_lastStreamSequence + 1}");
        }
    }

    private void Acknowledge(OnexEvent evt)
    {
        if (!_deliveries.TryGetValue(evt, out var delivery)) return;
        _deliveries.Remove(evt);
        // A double ack: the server answers once it has recorded the acknowledgement, so an acknowledgement that was
        // confirmed survives a restart of the server and the event is not delivered again.
        var confirmed = delivery.Message.AckAsync(new AckOpts { DoubleAck = true });
        if (confirmed.IsCompletedSuccessfully) return;
        var task = ObserveAsync(confirmed, "acknowledge");
        lock (_unconfirmedAcks) _unconfirmedAcks.Add(task);
        _ = task.ContinueWith(static (done, state) =>
        {
            var pending = (HashSet<Task>)state!;
            lock (pending) pending.Remove(done);
        }, _unconfirmedAcks, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Waits (bounded by the request timeout) until the server confirmed every acknowledgement sent so far.</summary>
    private async ValueTask AwaitAckConfirmationsAsync()
    {
        Task[] pending;
        lock (_unconfirmedAcks) pending = [.. _unconfirmedAcks];
        if (pending.Length == 0) return;
        try
        {
            await Task.WhenAll(pending).WaitAsync(_bus.Options.RequestTimeout, _bus.Time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            JetStreamLog.AcksUnconfirmed(_bus.Logger, pending.Count(t => !t.IsCompleted), _consumerName);
        }
    }

    /// <summary>An event that will not reach the reader: a durable consumer gets it back at once.</summary>
    private void Release(OnexEvent evt)
    {
        if (!_deliveries.TryGetValue(evt, out var delivery)) return;
        _deliveries.Remove(evt);
        // An ephemeral consumer is deleted on close; nothing would receive the redelivery.
        if (_durable) Settle(delivery.Message.NakAsync(), "return an undelivered event");
    }

    private void Settle(ValueTask pending, string operation)
    {
        if (pending.IsCompletedSuccessfully) return;
        _ = ObserveAsync(pending, operation);
    }

    private async Task ObserveAsync(ValueTask pending, string operation)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or OperationCanceledException or ObjectDisposedException)
        {
            JetStreamLog.SettleFailed(_bus.Logger, ex, operation, _consumerName);
        }
    }

    private ValueTask CloseAsync(bool acknowledgeHandedOut)
    {
        TaskCompletionSource? mine = null;
        OnexEvent? handedOut = null;
        Task closed;
        lock (_handGate)
        {
            if (_closed is null)
            {
                _closed = mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _closing = true;
                handedOut = _handedOut;
                _handedOut = null;
            }
            closed = _closed.Task;
        }
        return mine is null ? new ValueTask(closed) : RunCloseAsync(mine, acknowledgeHandedOut, handedOut);
    }

    private async ValueTask RunCloseAsync(TaskCompletionSource closed, bool acknowledgeHandedOut, OnexEvent? handedOut)
    {
        try
        {
            // Completing first releases a pump waiting for room; cancelling ends its pull.
            _queue.TryComplete();
            await _stop.CancelAsync().ConfigureAwait(false);
            await _pump.ConfigureAwait(false);

            if (handedOut is not null)
            {
                if (acknowledgeHandedOut) Acknowledge(handedOut);
                else Release(handedOut);
            }
            while (_queue.Reader.TryRead(out var undelivered))
                Release(undelivered);

            await _bus.FlushAsync().ConfigureAwait(false);
            if (_durable && _bus.IsConnected) await AwaitAckConfirmationsAsync().ConfigureAwait(false);
            if (!_durable && _bus.IsConnected)
                await DeleteEphemeralConsumerAsync().ConfigureAwait(false);
            await _queue.DisposeAsync().ConfigureAwait(false);
            _bus.Forget(this);
            _stop.Dispose();
            closed.SetResult();
        }
        catch (Exception ex)
        {
            closed.SetException(ex);
            throw;
        }
    }

    private async ValueTask DeleteEphemeralConsumerAsync()
    {
        try
        {
            await _bus.JetStream.DeleteConsumerAsync(_bus.StreamName, _consumerName).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode is JetStreamErrors.ConsumerNotFound or JetStreamErrors.StreamNotFound)
        {
            // Already gone (the server removed it or lost the stream).
        }
        catch (NatsException ex)
        {
            // The server drops it after EphemeralInactiveThreshold anyway.
            JetStreamLog.CleanupFailed(_bus.Logger, ex, $"delete consumer {_consumerName}", _bus.Name);
        }
    }

    /// <summary>The server message behind a queued or handed-out event, kept to acknowledge it later.</summary>
    private sealed class Delivery(INatsJSMsg<byte[]> message)
    {
        public INatsJSMsg<byte[]> Message { get; } = message;
    }
}
