using System.Text.Json;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>
/// Requests to a registry over NATS (PROTOCOL.md 18.2): each attempt is one NATS request on the subject of the
/// registry's host, carrying the same envelope as a ROUTER frame, answered with the reply envelope. The registry answers a
/// retry with the same ids from its reply cache, as over ZeroMQ.
/// </summary>
internal sealed class NatsRegistryRequestChannel : IRegistryRequestTransport
{
    private readonly NatsConnection _connection;
    private readonly ILogger _logger;
    private int _inFlight;

    /// <param name="url">The NATS server(s), <c>nats://HOST:PORT[,...]</c>.</param>
    /// <param name="hostName">The host whose registry answers.</param>
    /// <param name="timeout">How long each attempt waits for its reply.</param>
    /// <param name="logger">Where undecodable replies are reported.</param>
    public NatsRegistryRequestChannel(string url, string hostName, TimeSpan timeout, ILogger logger)
    {
        _logger = logger;
        Subject = RegistryNatsService.RequestSubject(hostName);
        _connection = new NatsConnection(NatsOpts.Default with
        {
            Url = url,
            Name = $"onex-registry-client {hostName}",
            RequestTimeout = timeout,
            MaxReconnectRetry = -1,
        });
    }

    /// <summary>True for an endpoint this channel serves (<c>nats://</c>).</summary>
    public static bool IsNatsEndpoint(string endpoint) => endpoint.StartsWith("nats://", StringComparison.OrdinalIgnoreCase);

    /// <summary>The subject requests go to.</summary>
    public string Subject { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    public int DropsWithoutReply => 0;

    public Func<RegistryEnvelope, bool>? ReplyFilter { get; set; }

    public async Task<RegistryEnvelope> ExchangeAsync(string requestId, byte[] frame, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            NatsMsg<byte[]> reply;
            try
            {
                reply = await _connection.RequestAsync(Subject, frame, requestSerializer: NatsRawSerializer<byte[]>.Default,
                    replySerializer: NatsRawSerializer<byte[]>.Default, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (NatsNoRespondersException)
            {
                // Nobody serves this host's subject (yet): retried like a lost frame, then UNAVAILABLE.
                throw new TimeoutException($"No registry answers on {Subject}.");
            }
            catch (NatsNoReplyException)
            {
                throw new TimeoutException($"No reply on {Subject} in time.");
            }
            catch (NatsException ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"NATS: {ex.Message}", ex);
            }
            RegistryEnvelope envelope;
            try
            {
                envelope = RegistryCodec.Decode(reply.Data ?? []);
            }
            catch (OnexException ex)
            {
                RegistryClientLog.UndecodableReply(_logger, Subject, ex.Code, ex.Message);
                throw new TimeoutException($"An undecodable reply on {Subject}.", ex);
            }
            if (ReplyFilter is { } filter && !filter(envelope)) throw new TimeoutException("Reply dropped by the test filter.");
            return envelope;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public void Complete(string requestId)
    {
        // Each NATS request has its own inbox: nothing is kept per request id.
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    /// <summary>
    /// The PUB endpoint the registry of <paramref name="hostName"/> advertises in its service info (<c>$SRV.INFO</c>),
    /// where its change stream is read; throws <see cref="UnavailableException"/> when no registry of that host answers.
    /// </summary>
    public static async Task<string> DiscoverPubEndpointAsync(string url, string hostName, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = url, Name = "onex-registry-client discovery" });
        var seen = new List<string>();
        try
        {
            await foreach (var message in connection.RequestManyAsync<byte[], byte[]>($"$SRV.INFO.{RegistryNatsService.ServiceName}", [],
                               requestSerializer: NatsRawSerializer<byte[]>.Default, replySerializer: NatsRawSerializer<byte[]>.Default,
                               replyOpts: new NatsSubOpts { Timeout = timeout }, cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                if (message.Data is not { } data) continue;
                using var info = JsonDocument.Parse(data);
                if (!info.RootElement.TryGetProperty("metadata", out var metadata) || metadata.ValueKind != JsonValueKind.Object) continue;
                var host = metadata.TryGetProperty(RegistryNatsService.HostMetadata, out var h) ? h.GetString() : null;
                if (host is not null) seen.Add(host);
                if (host == hostName && metadata.TryGetProperty(RegistryNatsService.PubEndpointMetadata, out var pub) && pub.GetString() is { Length: > 0 } endpoint)
                    return endpoint;
            }
        }
        catch (Exception ex) when (ex is NatsException or JsonException)
        {
            throw new UnavailableException($"Could not discover the registry of host '{hostName}' through NATS at {url}: {ex.Message}",
                new Dictionary<string, string> { ["endpoint"] = url, ["host"] = hostName }, ex);
        }
        throw new UnavailableException(
            $"No registry of host '{hostName}' answered $SRV.INFO.{RegistryNatsService.ServiceName} through NATS at {url} within {timeout.TotalSeconds:0.#} s" +
            (seen.Count > 0 ? $" (hosts that did: {string.Join(", ", seen)})." : "; is a registry running in cluster mode on that host?"),
            new Dictionary<string, string> { ["endpoint"] = url, ["host"] = hostName });
    }
}
