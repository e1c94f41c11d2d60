using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
/// The NATS JetStream backend of <see cref="IEventBus"/>: the distributed, persistent bus. Each bus is one stream
/// (<c>ONEX_&lt;name&gt;</c>, subjects <c>onex.&lt;name&gt;.&gt;</c>); an event is stored as its
/// <see cref="OnexEventCodec"/> encoding under subject <c>onex.&lt;name&gt;.&lt;topic&gt;</c>.
/// </summary>
/// <remarks>
/// <para>Delivery is <see cref="DeliveryGuarantee.AtLeastOnce"/>. <see cref="PublishAsync"/> completes when the
/// stream has stored the event; the event id travels as <c>Nats-Msg-Id</c>, so a retried publish within
/// <see cref="JetStreamEventBusOptions.DuplicateWindow"/> is stored once.</para>
/// <para>Each subscription is a pull consumer with explicit acknowledgement. An event is acknowledged when the reader
/// asks for the next one (<c>MoveNextAsync</c>, <c>TryRead</c>, <c>ReadAsync</c> or <c>WaitToReadAsync</c>) or when
/// the subscription is disposed after handing it out. Events never handed to the reader are not acknowledged. The
/// full rules, including what drop modes mean here, are in <c>Onex.Transports/JetStream/README.md</c>.</para>
/// <para>Disposing the bus abandons subscriptions that are still open: the event a reader holds is not
/// acknowledged (the reader may not have finished it), so a durable consumer delivers it again.</para>
/// </remarks>
public sealed class JetStreamEventBus : IEventBus, IEventBusProbe
{
    // Room left under the server's limits for the Nats-Msg-Id header that travels with every event.
    private const int HeaderAllowance = 256;

    private static readonly ResiliencePropertyKey<Exception?> LastFailureKey = new("onex.jetstream.lastFailure");
    private static readonly ResiliencePropertyKey<bool> StreamSuspectKey = new("onex.jetstream.streamSuspect");

    private readonly NatsConnection _connection;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ResiliencePipeline _publishRetry;
    private readonly ConcurrentDictionary<JetStreamSubscription, byte> _subscriptions = new();
    private readonly SemaphoreSlim _streamGate = new(1, 1);
    private readonly int _maxEncodedEventBytes;
    private int _disposed;

    private JetStreamEventBus(JetStreamEventBusOptions options, NatsConnection connection, NatsJSContext js, StreamInfo stream, ILogger logger)
    {
        Options = options;
        _time = options.TimeProvider ?? TimeProvider.System;
        Health = new EventBusHealth(BusConnectionState.Connected, new Onex.Diagnostics.BusTelemetry(options.Name, "jetstream"));
        Names = new JetStreamNames(options.Name);
        _connection = connection;
        JetStream = js;
        _logger = logger;
        StreamCreated = stream.Created;

        var serverLimit = connection.ServerInfo?.MaxPayload ?? int.MaxValue;
        var streamLimit = stream.Config.MaxMsgSize > 0 ? stream.Config.MaxMsgSize : int.MaxValue;
        _maxEncodedEventBytes = Math.Min(serverLimit, streamLimit) - HeaderAllowance;
        if (serverLimit < options.MaxEventBytes)
            JetStreamLog.ServerMaxPayloadBelowLimit(logger, options.Url, serverLimit, options.MaxEventBytes);

        _publishRetry = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is { } ex && (IsTransient(ex) || IsInternalTimeout(ex, args.Context.CancellationToken))),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
                UseJitter = true,
                OnRetry = args =>
                {
                    var failure = args.Outcome.Exception;
                    args.Context.Properties.Set(LastFailureKey, failure);
                    if (failure is not null && IsNoResponders(failure))
                        args.Context.Properties.Set(StreamSuspectKey, true);
                    return default;
                },
            })
            .Build();
    }

    /// <inheritdoc/>
    public string Name => Options.Name;

    /// <inheritdoc/>
    public DeliveryGuarantee Guarantee => DeliveryGuarantee.AtLeastOnce;

    /// <inheritdoc/>
    /// <remarks>
    /// Follows the NATS connection (Disconnected while NATS.Net reconnects). Subscriptions default to
    /// <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/>: a full one stops pulling and the server keeps
    /// its backlog. In a drop mode a dropped event is counted but not acknowledged, so the server delivers it again
    /// after <c>AckWait</c>.
    /// </remarks>
    public EventBusHealth Health { get; }

    /// <summary>The server URL this bus talks to, as given in <see cref="JetStreamEventBusOptions.Url"/> (what the registry records).</summary>
    public string Endpoint => Options.Url;

    /// <summary>The JetStream stream that stores this bus's events.</summary>
    public string StreamName => Names.StreamName;

    /// <summary>The settings this bus was connected with.</summary>
    public JetStreamEventBusOptions Options { get; }

    /// <summary>The bus's clock (<see cref="JetStreamEventBusOptions.TimeProvider"/>).</summary>
    internal TimeProvider Time => _time;

    internal JetStreamNames Names { get; }

    internal NatsJSContext JetStream { get; }

    internal ILogger Logger => _logger;

    internal bool IsConnected => _connection.ConnectionState == NatsConnectionState.Open;

    /// <summary>When the stream this bus last saw was created; a different value means the server lost and re-made it.</summary>
    internal DateTimeOffset StreamCreated { get; private set; }

    /// <summary>
    /// Connects to the server in <see cref="JetStreamEventBusOptions.Url"/>, checks that JetStream is enabled and
    /// declares the bus's stream if it does not exist yet (an existing stream is used with the limits it has).
    /// </summary>
    /// <exception cref="ArgumentException">A setting in <paramref name="options"/> is invalid.</exception>
    /// <exception cref="UnavailableException">
    /// The server cannot be reached within <see cref="JetStreamEventBusOptions.ConnectTimeout"/>, or it does not have
    /// JetStream enabled. The message and <see cref="OnexException.Details"/> (<c>url</c>) name the server.
    /// </exception>
    /// <exception cref="OnexException">The server refused the stream (code INVALID_ARGUMENT, e.g. overlapping subjects).</exception>
    public static async ValueTask<JetStreamEventBus> ConnectAsync(JetStreamEventBusOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var natsOpts = NatsOpts.Default with
        {
            Url = options.Url,
            Name = string.IsNullOrEmpty(options.NodeId) ? $"onex:{options.Name}" : $"onex:{options.NodeId}:{options.Name}",
            ConnectTimeout = options.ConnectTimeout,
            RequestTimeout = options.RequestTimeout,
            // While disconnected a publish (event, ack or pull) fails after this instead of waiting for the reconnect,
            // so PublishAsync stays within its timeout and its retries are the ones that wait.
            CommandTimeout = options.RequestTimeout,
            PublishTimeoutOnDisconnected = true,
            ReconnectWaitMin = options.ReconnectWaitMin,
            ReconnectWaitMax = options.ReconnectWaitMax,
            MaxReconnectRetry = -1,
            RetryOnInitialConnect = false,
            LoggerFactory = loggerFactory,
            AuthOpts = options.Credentials.ToAuthOpts(),
        };
        var connection = new NatsConnection(natsOpts);
        try
        {
            try
            {
                await connection.ConnectAsync().AsTask().WaitAsync(options.ConnectTimeout, options.TimeProvider ?? TimeProvider.System, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsAuthorizationFailure(ex))
            {
                throw Unreachable(options.Url,
                    $"the server refused the credentials ({options.Credentials}): {Innermost(ex).Message}; check JetStreamEventBusOptions.Credentials " +
                    "against the server's authorization block", ex);
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException or System.Net.Sockets.SocketException)
            {
                throw Unreachable(options.Url, $"cannot connect within {options.ConnectTimeout.TotalSeconds:0.#} s: {ex.Message}", ex);
            }

            var js = new NatsJSContext(connection, new NatsJSOpts(natsOpts, requestTimeout: options.RequestTimeout));
            var names = new JetStreamNames(options.Name);
            StreamInfo stream;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    stream = await DeclareStreamAsync(js, names, options, loggerFactory.CreateLogger<JetStreamEventBus>(), cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (UnavailableException ex) when (ex.InnerException is NatsJSApiNoResponseException && attempt < DeclareAttempts)
                {
                    // Connected, JetStream enabled, but no answer within RequestTimeout: a busy server (or machine) is
                    // slow, not absent. Ask again, as a publish does (declaring is idempotent: a stream created by a
                    // request whose answer was lost is found as existing); only NoResponders means no JetStream.
                }
            }
            var bus = new JetStreamEventBus(options, connection, js, stream, loggerFactory.CreateLogger<JetStreamEventBus>());
            connection.ConnectionOpened += bus.OnConnectionOpenedAsync;
            connection.ConnectionDisconnected += bus.OnConnectionDisconnectedAsync;
            JetStreamLog.Connected(bus._logger, options.Name, options.Url, connection.ServerInfo?.Version ?? "?", names.StreamName);
            return bus;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Stores <paramref name="evt"/> in the stream and completes when the server acknowledged it. Transient failures
    /// (no connection, no acknowledgement, the server restarting) are retried within
    /// <see cref="JetStreamEventBusOptions.PublishTimeout"/>; a retry never stores the event twice.
    /// </summary>
    /// <exception cref="ArgumentException">The event's topic is not a valid concrete topic.</exception>
    /// <exception cref="MessageTooLargeException">The encoded event exceeds the codec, stream or server limit (TOO_LARGE).</exception>
    /// <exception cref="UnavailableException">The server did not store the event within the publish timeout (UNAVAILABLE).</exception>
    /// <exception cref="ObjectDisposedException">The bus is disposed.</exception>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentNullException.ThrowIfNull(evt);
        Topic.EnsureValid(evt.Topic);
        evt = evt.WithSource(Options.NodeId, _time);
        var telemetry = Health.Telemetry.StartPublish(ref evt);
        return telemetry.IsActive ? telemetry.Track(PublishCoreAsync(evt, cancellationToken)) : PublishCoreAsync(evt, cancellationToken);
    }

    private async ValueTask PublishCoreAsync(OnexEvent evt, CancellationToken cancellationToken)
    {
        var body = Options.Codec.Encode(evt);
        if (body.Length > _maxEncodedEventBytes)
            throw new MessageTooLargeException(
                $"Event {evt.EventId} encodes to {body.Length} bytes; bus '{Name}' accepts at most {_maxEncodedEventBytes} (the stream's max_msg_size and the server's max_payload, less {HeaderAllowance} bytes for headers).",
                new Dictionary<string, string> { ["size"] = body.Length.ToString(), ["limit"] = _maxEncodedEventBytes.ToString(), ["url"] = Options.Url });

        var subject = Names.SubjectFor(evt.Topic);
        var started = _time.GetTimestamp();
        try
        {
            PubAckResponse ack;
            try
            {
                ack = await SendAsync(subject, body, evt.EventId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsTransient(ex) || IsInternalTimeout(ex, cancellationToken))
            {
                // The slow path: retries with backoff in what is left of PublishTimeout; the happy path stays lean.
                ack = await PublishWithRetriesAsync(subject, body, evt, ex, _time.GetElapsedTime(started), cancellationToken).ConfigureAwait(false);
            }
            if (ack.Duplicate)
                JetStreamLog.PublishDuplicate(_logger, evt.EventId, ack.Stream ?? StreamName, ack.Seq);
        }
        catch (NatsJSApiException ex)
        {
            throw Rejected(ex, evt);
        }
        catch (NatsPayloadTooLargeException ex)
        {
            throw new MessageTooLargeException($"Event {evt.EventId} is larger than the server at {Options.Url} accepts: {ex.Message}",
                new Dictionary<string, string> { ["size"] = body.Length.ToString(), ["url"] = Options.Url });
        }
        catch (NatsException ex)
        {
            throw new UnavailableException($"Bus '{Name}': publishing event {evt.EventId} to {Options.Url} failed: {ex.Message}",
                new Dictionary<string, string> { ["url"] = Options.Url, ["eventId"] = evt.EventId }, ex);
        }
    }

    /// <summary>
    /// Subscribes to <paramref name="pattern"/>. Completes once the server has created the consumer, so every event
    /// published after this returns is delivered. Without <see cref="SubscriptionOptions.DurableName"/> the consumer
    /// is ephemeral and starts at events published from now on; with it the consumer is durable: the first
    /// subscription under that name starts from now, later ones (any process, any bus instance) resume where the
    /// previous one stopped acknowledging. Subscriptions sharing a durable name share its events.
    /// </summary>
    /// <exception cref="ArgumentException">The pattern or a subscription option is invalid.</exception>
    /// <exception cref="UnavailableException">The server could not be reached.</exception>
    /// <exception cref="OnexException">The server refused the consumer (INVALID_ARGUMENT).</exception>
    public async ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var queue = new EventChannel(pattern, options, health: Health, defaultFullMode: System.Threading.Channels.BoundedChannelFullMode.Wait);
        var subscription = new JetStreamSubscription(this, queue);
        try
        {
            await subscription.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await queue.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _subscriptions.TryAdd(subscription, 0);
        if (Volatile.Read(ref _disposed) != 0)
        {
            // Lost a race with DisposeAsync, which may not have seen this subscription.
            await subscription.AbandonAsync().ConfigureAwait(false);
            throw new ObjectDisposedException(GetType().FullName);
        }
        return subscription;
    }

    /// <summary>
    /// Stops every open subscription without acknowledging what their readers hold, deletes the stream when
    /// <see cref="JetStreamEventBusOptions.DeleteStreamOnDispose"/> is set, and closes the connection.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _connection.ConnectionOpened -= OnConnectionOpenedAsync;
        _connection.ConnectionDisconnected -= OnConnectionDisconnectedAsync;
        Health.SetState(BusConnectionState.Closed, "disposed");
        foreach (var subscription in _subscriptions.Keys)
            await subscription.AbandonAsync().ConfigureAwait(false);

        if (Options.DeleteStreamOnDispose && IsConnected)
        {
            try
            {
                await JetStream.DeleteStreamAsync(StreamName).ConfigureAwait(false);
                JetStreamLog.StreamDeleted(_logger, StreamName);
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.StreamNotFound)
            {
                JetStreamLog.StreamDeleted(_logger, StreamName);
            }
            catch (NatsException ex)
            {
                JetStreamLog.CleanupFailed(_logger, ex, "delete stream", Name);
            }
        }

        await FlushAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    /// <remarks>Asks the server for the bus's stream, within <see cref="JetStreamEventBusOptions.RequestTimeout"/>.</remarks>
    public async ValueTask<string> ProbeAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var details = new Dictionary<string, string> { ["url"] = Options.Url, ["stream"] = StreamName };
        if (!IsConnected)
            throw new UnavailableException($"Bus '{Name}' is not connected to {Options.Url} (NATS is reconnecting).", details);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Options.RequestTimeout);
        try
        {
            var stream = await JetStream.GetStreamAsync(StreamName, cancellationToken: timeout.Token).ConfigureAwait(false);
            return $"stream {StreamName} on {Options.Url} answered ({stream.Info.State.Messages} events stored)";
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.StreamNotFound)
        {
            throw new UnavailableException($"The server at {Options.Url} has no stream {StreamName} for bus '{Name}'.", details, ex);
        }
        catch (Exception ex) when (ex is NatsException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new UnavailableException($"The server at {Options.Url} did not answer for stream {StreamName} within {Options.RequestTimeout.TotalSeconds:0.###} s: {ex.Message}", details, ex);
        }
    }

    /// <summary>Waits until the server has processed everything sent so far (acknowledgements included).</summary>
    internal async ValueTask FlushAsync()
    {
        if (!IsConnected) return;
        try
        {
            using var timeout = new CancellationTokenSource(Options.RequestTimeout, _time);
            await _connection.PingAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or OperationCanceledException)
        {
            JetStreamLog.CleanupFailed(_logger, ex, "flush", Name);
        }
    }

    internal void Forget(JetStreamSubscription subscription) => _subscriptions.TryRemove(subscription, out _);

    /// <summary>
    /// Makes sure the stream exists, declaring it again when the server lost it (a memory stream after a restart).
    /// Returns its info; <see cref="StreamCreated"/> tells subscriptions whether it is a new stream.
    /// </summary>
    internal async ValueTask<StreamInfo> EnsureStreamAsync(CancellationToken cancellationToken)
    {
        await _streamGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var stream = await DeclareStreamAsync(JetStream, Names, Options, _logger, cancellationToken).ConfigureAwait(false);
            StreamCreated = stream.Created;
            return stream;
        }
        finally
        {
            _streamGate.Release();
        }
    }

    /// <summary>Turns a NATS failure during a JetStream API call into the matching Onex exception.</summary>
    internal OnexException Translate(Exception ex, string action) => ex switch
    {
        NatsJSApiException api => new InvalidArgumentException($"Bus '{Name}': JetStream refused to {action}: {api.Error.Description} (error {api.Error.ErrCode}).",
            new Dictionary<string, string> { ["url"] = Options.Url, ["stream"] = StreamName, ["errCode"] = api.Error.ErrCode.ToString() }),
        _ => new UnavailableException(
            $"Bus '{Name}': could not {action} on {Options.Url}: {ex.Message}",
            new Dictionary<string, string> { ["url"] = Options.Url, ["stream"] = StreamName },
            ex),
    };

    private async ValueTask<PubAckResponse> PublishWithRetriesAsync(
        string subject, byte[] body, OnexEvent evt, Exception firstFailure, TimeSpan elapsed, CancellationToken cancellationToken)
    {
        JetStreamLog.PublishRetry(_logger, evt.EventId, evt.Topic, firstFailure.Message);
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var remaining = Options.PublishTimeout - elapsed;
        budget.CancelAfter(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
        var context = ResilienceContextPool.Shared.Get(budget.Token);
        context.Properties.Set(LastFailureKey, firstFailure);
        context.Properties.Set(StreamSuspectKey, IsNoResponders(firstFailure));
        try
        {
            return await _publishRetry.ExecuteAsync(
                static (ctx, state) => state.Bus.RetryAttemptAsync(ctx, state.Subject, state.Body, state.EventId),
                context,
                (Bus: this, Subject: subject, Body: body, evt.EventId)).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            var cause = context.Properties.GetValue(LastFailureKey, firstFailure);
            throw new UnavailableException(
                $"Bus '{Name}': the server at {Options.Url} did not acknowledge event {evt.EventId} within {Options.PublishTimeout.TotalSeconds:0.#} s"
                + (cause is null ? "." : $" (last failure: {cause.Message})."),
                new Dictionary<string, string> { ["url"] = Options.Url, ["eventId"] = evt.EventId, ["stream"] = StreamName },
                cause ?? ex);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async ValueTask<PubAckResponse> RetryAttemptAsync(ResilienceContext context, string subject, byte[] body, string eventId)
    {
        if (context.Properties.GetValue(StreamSuspectKey, false))
        {
            context.Properties.Set(StreamSuspectKey, false);
            await EnsureStreamAsync(context.CancellationToken).ConfigureAwait(false);
        }
        return await SendAsync(subject, body, eventId, context.CancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<PubAckResponse> SendAsync(string subject, byte[] body, string eventId, CancellationToken cancellationToken)
    {
        var ack = await JetStream.PublishAsync(
            subject, body, NatsRawSerializer<byte[]>.Default, new NatsJSPubOpts { MsgId = eventId },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        // A duplicate is a success: the stream already holds this event from an earlier attempt.
        if (!ack.Duplicate) ack.EnsureSuccess();
        return ack;
    }

    // The client cancels a publish it could not send within CommandTimeout while disconnected.
    private static bool IsInternalTimeout(Exception ex, CancellationToken callerToken) =>
        ex is OperationCanceledException && !callerToken.IsCancellationRequested;

    // No responders means no stream listens on the subject: the server may have lost a memory stream.
    private static bool IsNoResponders(Exception ex) => ex is NatsNoRespondersException or NatsJSPublishNoResponseException;

    private static bool IsTransient(Exception ex) => ex is NatsNoRespondersException
        or NatsJSPublishNoResponseException
        or NatsJSApiNoResponseException
        or NatsTimeoutException
        or NatsJSTimeoutException
        or NatsNoReplyException
        or NatsConnectionFailedException
        or NatsJSConnectionException
        or TimeoutException;

    // Declaring the stream at creation is asked this often when the server does not answer in time (see CreateAsync).
    private const int DeclareAttempts = 3;

    private static async ValueTask<StreamInfo> DeclareStreamAsync(
        NatsJSContext js, JetStreamNames names, JetStreamEventBusOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            try
            {
                var existing = await js.GetStreamAsync(names.StreamName, cancellationToken: cancellationToken).ConfigureAwait(false);
                return UseExisting(existing.Info, names, options, logger);
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.StreamNotFound)
            {
                // Declared below.
            }

            var config = options.ToStreamConfig(names.StreamName, names.StreamSubject) with { Description = $"OnexBus bus '{options.Name}'" };
            try
            {
                var created = await js.CreateStreamAsync(config, cancellationToken).ConfigureAwait(false);
                JetStreamLog.StreamCreated(logger, names.StreamName, names.StreamSubject);
                return created.Info;
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode == JetStreamErrors.StreamNameInUse)
            {
                // Another bus instance declared it first, possibly with other limits: use it as it is.
                var existing = await js.GetStreamAsync(names.StreamName, cancellationToken: cancellationToken).ConfigureAwait(false);
                return UseExisting(existing.Info, names, options, logger);
            }
        }
        catch (NatsJSApiException ex)
        {
            throw new InvalidArgumentException($"The server at {options.Url} refused stream {names.StreamName} for bus '{options.Name}': {ex.Error.Description} (error {ex.Error.ErrCode}).",
                new Dictionary<string, string> { ["url"] = options.Url, ["stream"] = names.StreamName, ["errCode"] = ex.Error.ErrCode.ToString() });
        }
        catch (NatsNoRespondersException ex)
        {
            throw Unreachable(options.Url, "JetStream does not answer: is the server started with JetStream enabled (-js)?", ex);
        }
        catch (NatsJSApiNoResponseException ex)
        {
            throw Unreachable(options.Url, $"JetStream did not answer within {options.RequestTimeout.TotalSeconds:0.#} s (RequestTimeout): the server is overloaded, or not started with JetStream enabled (-js)", ex);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException)
        {
            throw Unreachable(options.Url, $"declaring stream {names.StreamName} failed: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Checks that an existing stream is this bus's and uses it as it is (the first declarer's limits win), warning
    /// when its limits differ from this participant's options, so a changed setting does not go unnoticed.
    /// </summary>
    private static StreamInfo UseExisting(StreamInfo stream, JetStreamNames names, JetStreamEventBusOptions options, ILogger logger)
    {
        CheckSubjects(stream, names, options);
        var differences = StreamLimitDifferences(stream.Config, options.ToStreamConfig(names.StreamName, names.StreamSubject));
        if (differences.Count > 0)
            JetStreamLog.StreamLimitsDiffer(logger, names.StreamName, options.Name, string.Join("; ", differences));
        return stream;
    }

    /// <summary>The limits in which <paramref name="existing"/> differs from <paramref name="wanted"/>, as "name: existing (wanted)".</summary>
    internal static IReadOnlyList<string> StreamLimitDifferences(StreamConfig existing, StreamConfig wanted)
    {
        var differences = new List<string>();
        void Compare<T>(string name, T actual, T desired)
        {
            if (!EqualityComparer<T>.Default.Equals(actual, desired)) differences.Add($"{name}: {actual} (options: {desired})");
        }
        Compare("storage", existing.Storage, wanted.Storage);
        Compare("replicas", existing.NumReplicas, wanted.NumReplicas);
        Compare("max_age", existing.MaxAge, wanted.MaxAge);
        Compare("max_bytes", existing.MaxBytes, wanted.MaxBytes);
        Compare("max_msg_size", existing.MaxMsgSize, wanted.MaxMsgSize);
        Compare("duplicate_window", existing.DuplicateWindow, wanted.DuplicateWindow);
        Compare("retention", existing.Retention, wanted.Retention);
        Compare("discard", existing.Discard, wanted.Discard);
        return differences;
    }

    private static StreamInfo CheckSubjects(StreamInfo stream, JetStreamNames names, JetStreamEventBusOptions options)
    {
        if (stream.Config.Subjects?.Contains(names.StreamSubject) != true)
            throw new InvalidArgumentException($"Stream {names.StreamName} on {options.Url} exists but does not hold subjects {names.StreamSubject}; it is not a stream of bus '{options.Name}'.",
                new Dictionary<string, string> { ["url"] = options.Url, ["stream"] = names.StreamName });
        return stream;
    }

    /// <summary>nats-server answers bad or missing credentials with <c>-ERR 'Authorization Violation'</c> (or an auth timeout).</summary>
    private static bool IsAuthorizationFailure(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
            if (e.Message.Contains("Authorization Violation", StringComparison.OrdinalIgnoreCase) ||
                e.Message.Contains("Authentication Timeout", StringComparison.OrdinalIgnoreCase) ||
                e.Message.Contains("authorization", StringComparison.OrdinalIgnoreCase))
                return true;
        return false;
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is { } inner) ex = inner;
        return ex;
    }

    private static UnavailableException Unreachable(string url, string reason, Exception inner) =>
        new($"NATS server {url} is unavailable: {reason}", new Dictionary<string, string> { ["url"] = url }, inner);

    private OnexException Rejected(NatsJSApiException ex, OnexEvent evt)
    {
        var details = new Dictionary<string, string>
        {
            ["url"] = Options.Url, ["stream"] = StreamName, ["eventId"] = evt.EventId, ["errCode"] = ex.Error.ErrCode.ToString(),
        };
        return ex.Error.ErrCode == JetStreamErrors.MessageSizeExceedsMaximum
            ? new MessageTooLargeException($"Stream {StreamName} refused event {evt.EventId}: {ex.Error.Description}.", details)
            : new UnavailableException($"Stream {StreamName} refused event {evt.EventId}: {ex.Error.Description} (error {ex.Error.ErrCode}).", details, ex);
    }

    private ValueTask OnConnectionOpenedAsync(object? sender, NatsEventArgs args)
    {
        JetStreamLog.ConnectionOpened(_logger, Options.Url);
        Health.SetState(BusConnectionState.Connected, $"connected to {Options.Url}");
        foreach (var subscription in _subscriptions.Keys)
            subscription.OnReconnected();
        return default;
    }

    private ValueTask OnConnectionDisconnectedAsync(object? sender, NatsEventArgs args)
    {
        JetStreamLog.Disconnected(_logger, Options.Url);
        Health.SetState(BusConnectionState.Disconnected, $"lost the connection to {Options.Url}; reconnecting");
        return default;
    }
}

/// <summary>JetStream API error codes (<c>err_code</c>) the backend reacts to.</summary>
internal static class JetStreamErrors
{
    public const int ConsumerNotFound = 10014;
    public const int MessageSizeExceedsMaximum = 10054;
    public const int StreamNameInUse = 10058;
    public const int StreamNotFound = 10059;
}
