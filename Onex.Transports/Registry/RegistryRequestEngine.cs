using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Zmq;
using Polly;
using Polly.Retry;

namespace Onex.Transports.Registry;

/// <summary>
/// The request side of <see cref="RegistryClient"/>: sends a request over the transport (ZeroMQ DEALER or NATS), matches
/// its reply by request id, retries transient failures with backoff under the same request id (so the registry answers
/// a retry from its reply cache) and turns error replies and timeouts into <see cref="OnexException"/>s.
/// </summary>
internal sealed partial class RegistryRequestEngine : IAsyncDisposable
{
    private readonly RegistryClientOptions _options;
    private readonly string? _token;
    private readonly string? _tenant;
    private readonly IRegistryRequestTransport _channel;
    private readonly ResiliencePipeline _retry;
    private readonly ILogger _logger;
    private readonly string _noAnswerHint;
    private long _requestCounter;
    private int _closed;

    public RegistryRequestEngine(
        RegistryClientOptions options, string endpoint, string? serverKey, ZmqSocketOptions sockets, string clientId, string? token,
        string? tenant, string registryHostName, TimeProvider timeProvider, ILogger logger)
    {
        _options = options;
        Endpoint = endpoint;
        ServerKey = serverKey;
        ClientId = clientId;
        _token = token;
        _tenant = tenant;
        TimeProvider = timeProvider;
        _logger = logger;
        _channel = NatsRegistryRequestChannel.IsNatsEndpoint(endpoint)
            ? new NatsRegistryRequestChannel(endpoint, registryHostName, options.RequestTimeout, logger)
            : new RegistryRequestChannel(endpoint, sockets, options.RequestTimeout, timeProvider, logger);
        _noAnswerHint = NoAnswerHint(_channel, endpoint, registryHostName);
        _retry = BuildRetryPipeline();
    }

    public string Endpoint { get; }

    public string? ServerKey { get; }

    public string ClientId { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>Requests awaiting a reply right now.</summary>
    public int InFlight => _channel.InFlight;

    /// <summary>Test seam: drops replies for which it returns false, as if lost on the wire.</summary>
    public Func<RegistryEnvelope, bool>? ReplyFilter
    {
        get => _channel.ReplyFilter;
        set => _channel.ReplyFilter = value;
    }

    /// <summary>From now on only single-attempt requests (the client's goodbyes) are sent; others throw <see cref="ObjectDisposedException"/>.</summary>
    public void Close() => Volatile.Write(ref _closed, 1);

    public ValueTask DisposeAsync() => _channel.DisposeAsync();

    /// <summary>
    /// Sends one request and returns its reply body. Transient failures (no reply in time, an UNAVAILABLE error
    /// reply) are retried with backoff under the same request id; after the last attempt an
    /// <see cref="UnavailableException"/> names the endpoint. Other error replies throw at once.
    /// </summary>
    public async ValueTask<TReply> RequestAsync<TRequest, TReply>(TRequest body, CancellationToken cancellationToken, bool singleAttempt = false)
        where TReply : class
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0 && !singleAttempt, typeof(RegistryClient));
        var requestId = Interlocked.Increment(ref _requestCounter).ToString("x");
        using var activity = Onex.Diagnostics.OnexRegistryDiagnostics.StartClientActivity(MessageTypes.Of<TRequest>());
        var frame = RegistryCodec.Encode(requestId, ClientId, body, token: _token,
            traceParent: activity is null ? null : Onex.Diagnostics.OnexBusDiagnostics.FormatTraceParent(activity.Context), tenant: _tenant);
        // The registry answers TOO_LARGE only up to its receive limit (1 MiB + 64 KiB) and cuts the connection beyond it
        // (PROTOCOL.md 2.3, 14): refuse here what it would refuse, with the same error, instead of timing out.
        if (frame.Length > RegistryCodec.MaxFrameBytes)
            throw new MessageTooLargeException(
                $"The {MessageTypes.Of<TRequest>()} request is {frame.Length} bytes; the registry reads requests of at most {RegistryCodec.MaxFrameBytes} bytes.",
                new Dictionary<string, string> { ["size"] = frame.Length.ToString(), ["limit"] = RegistryCodec.MaxFrameBytes.ToString() });
        var exchange = new Exchange(this, requestId, frame, MessageTypes.Of<TRequest>());
        var started = TimeProvider.GetTimestamp();
        try
        {
            if (singleAttempt || _options.MaxAttempts == 1)
                return await exchange.SendAsync<TReply>(cancellationToken).ConfigureAwait(false);
            // The first attempt goes straight out; the retry pipeline is entered only when it failed transiently, and
            // replays that failure as its own first attempt, so backoff and attempt count are the pipeline's as before.
            // Like the pipeline, send nothing for a caller that has already given up.
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await exchange.SendAsync<TReply>(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsRetried(ex))
            {
                exchange.FirstFailure = ExceptionDispatchInfo.Capture(ex);
            }
            return await _retry.ExecuteAsync(
                static (state, token) => state.SendAsync<TReply>(token), exchange, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not TimeoutException && Onex.Diagnostics.OnexRegistryDiagnostics.RecordFailure(activity, ex))
        {
            throw; // never reached: the filter records the failure on the client span and does not catch
        }
        catch (TimeoutException ex)
        {
            var elapsed = TimeProvider.GetElapsedTime(started);
            var attempts = singleAttempt ? 1 : _options.MaxAttempts;
            var details = new Dictionary<string, string>
            {
                ["endpoint"] = Endpoint,
                ["attempts"] = attempts.ToString(),
                ["elapsedMs"] = ((long)elapsed.TotalMilliseconds).ToString(),
                ["messageType"] = exchange.MessageType,
                ["requestId"] = requestId,
            };
            var hint = _noAnswerHint;
            if (_channel.DropsWithoutReply > 0)
            {
                // The registry accepted the TCP connection and closed it during the ZeroMQ handshake (RegistryRequestEngine.Curve.cs).
                details["reason"] = "handshake";
                details["connectionsClosed"] = _channel.DropsWithoutReply.ToString();
                details["curve"] = ServerKey is null ? "off" : "on";
                hint = HandshakeHint();
            }
            var unavailable = new UnavailableException(
                $"registry at {Endpoint} did not answer within {FormatSeconds(elapsed)} ({attempts} attempt{(attempts == 1 ? "" : "s")}); {hint}",
                details, ex);
            Onex.Diagnostics.OnexRegistryDiagnostics.RecordFailure(activity, unavailable);
            throw unavailable;
        }
        finally
        {
            _channel.Complete(requestId);
        }
    }

    /// <summary>What to check when no answer came, in the words of the transport the requests went over.</summary>
    private static string NoAnswerHint(IRegistryRequestTransport channel, string endpoint, string registryHostName) => channel is NatsRegistryRequestChannel nats
        ? $"is the NATS server up, and a registry in cluster mode serving host '{registryHostName}' through it (subject {nats.Subject})? " +
          $"start one with `onex registry serve --cluster {endpoint} --host-name {registryHostName}`, or set RegistryClientOptions.HostName " +
          "(ONEX_REGISTRY_HOST) to the host whose registry you mean"
        : "is it running? start one with `onex registry serve`";

    /// <summary>The failures the retry pipeline retries: no reply in time, or an UNAVAILABLE error reply.</summary>
    private static bool IsRetried(Exception ex) => ex is TimeoutException or UnavailableException;

    private ResiliencePipeline BuildRetryPipeline() => _options.MaxAttempts == 1 ? ResiliencePipeline.Empty : new ResiliencePipelineBuilder { TimeProvider = TimeProvider }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsRetried),
            MaxRetryAttempts = _options.MaxAttempts - 1,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = _options.RetryBaseDelay,
            MaxDelay = _options.RetryMaxDelay,
        })
        .Build();

    private static string FormatSeconds(TimeSpan elapsed) =>
        elapsed.TotalSeconds >= 10 ? $"{elapsed.TotalSeconds:0} s" : $"{elapsed.TotalSeconds:0.#} s";

    /// <summary>One request's attempts: the same frame and request id each time.</summary>
    private sealed class Exchange(RegistryRequestEngine engine, string requestId, byte[] frame, string messageType)
    {
        private int _attempts;

        public string MessageType { get; } = messageType;

        /// <summary>The transient failure of an attempt made outside the retry pipeline, to be replayed as its first attempt.</summary>
        public ExceptionDispatchInfo? FirstFailure { get; set; }

        public async ValueTask<TReply> SendAsync<TReply>(CancellationToken cancellationToken) where TReply : class
        {
            if (FirstFailure is { } failure)
            {
                // The first attempt ran outside the retry pipeline (RequestAsync); its failure is the pipeline's first outcome.
                FirstFailure = null;
                failure.Throw();
            }
            if (++_attempts > 1)
                RegistryClientLog.Retrying(engine._logger, MessageType, requestId, _attempts);
            var reply = await engine._channel.ExchangeAsync(requestId, frame, cancellationToken).ConfigureAwait(false);
            if (reply.MessageType == MessageTypes.Of<Error>())
            {
                // Forget this reply so that a retry (of UNAVAILABLE) is sent afresh instead of reading it again.
                engine._channel.Complete(requestId);
                var error = reply.BodyAs<Error>();
                throw OnexException.FromError(error.Code, error.Message, error.Details, origin: $"registry at {engine.Endpoint}");
            }
            if (reply.MessageType != MessageTypes.Of<TReply>())
                throw new MalformedMessageException(
                    $"The registry answered {MessageType} with {reply.MessageType}, expected {MessageTypes.Of<TReply>()}.",
                    new Dictionary<string, string> { ["requestId"] = requestId, ["messageType"] = reply.MessageType });
            return reply.BodyAs<TReply>();
        }
    }
}
