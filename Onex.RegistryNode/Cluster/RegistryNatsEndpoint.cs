using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.Services;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The registry's request protocol as a NATS service (PROTOCOL.md 18.2), on the cluster's NATS connection: every
/// request message goes through the same dispatcher on the registry thread as a ROUTER frame (auth, reply cache,
/// parking, commit before reply), and its reply goes back as the NATS reply. Requests in flight are bounded.
/// </summary>
internal sealed partial class RegistryNatsEndpoint : IAsyncDisposable
{
    /// <summary>Requests over NATS waiting for their reply at once; past it a request is answered UNAVAILABLE at once.</summary>
    public const int MaxInFlight = 1_024;

    // A bound on a registry thread that never answers (stopping): real time.
    private static readonly TimeSpan ReplyBound = TimeSpan.FromSeconds(60);

    private readonly Func<byte[], Task<byte[]>> _dispatch;
    private readonly ILogger _logger;
    private INatsSvcServer? _service;
    private int _inFlight;

    private RegistryNatsEndpoint(Func<byte[], Task<byte[]>> dispatch, ILogger logger)
    {
        _dispatch = dispatch;
        _logger = logger;
    }

    /// <summary>The subject requests arrive on.</summary>
    public string Subject { get; private init; } = "";

    /// <summary>Adds the service (name <see cref="RegistryNatsService.ServiceName"/>) and its endpoint on <paramref name="connection"/>.</summary>
    public static async Task<RegistryNatsEndpoint> StartAsync(
        INatsConnection connection, string hostName, IReadOnlyDictionary<string, string> metadata, Func<byte[], Task<byte[]>> dispatch,
        ILogger logger, CancellationToken cancellationToken)
    {
        var subject = RegistryNatsService.RequestSubject(hostName);
        var endpoint = new RegistryNatsEndpoint(dispatch, logger) { Subject = subject };
        var all = new Dictionary<string, string>(metadata) { [RegistryNatsService.HostMetadata] = hostName };
        var config = new NatsSvcConfig(RegistryNatsService.ServiceName, "1.0.0")
        {
            Description = "OnexBus registry: port leases, registrations and introspection of one host (PROTOCOL.md 18.2)",
            Metadata = all,
        };
        var service = await new NatsSvcContext(connection).AddServiceAsync(config, cancellationToken).ConfigureAwait(false);
        endpoint._service = service;
        await service.AddEndpointAsync<byte[]>(endpoint.HandleAsync, RegistryNatsService.EndpointName, subject,
            metadata: new Dictionary<string, string> { [RegistryNatsService.HostMetadata] = hostName },
            serializer: NatsRawSerializer<byte[]>.Default, cancellationToken: cancellationToken).ConfigureAwait(false);
        endpoint.LogServing(subject, RegistryNatsService.ServiceName);
        return endpoint;
    }

    private ValueTask HandleAsync(NatsSvcMsg<byte[]> message)
    {
        // Not awaited here: the service delivers an endpoint's messages one after the other, and a registration parked
        // for a cluster claim must not hold up the requests behind it.
        if (Interlocked.Increment(ref _inFlight) > MaxInFlight)
        {
            Interlocked.Decrement(ref _inFlight);
            var (requestId, clientId) = RegistryCodec.TryReadIds(message.Data ?? []);
            var busy = RegistryCodec.Encode(requestId ?? "", clientId ?? "", new Error
            {
                Code = ErrorCodes.Unavailable,
                Message = $"The registry has {MaxInFlight} requests over NATS in flight; retry with the same ids.",
                Details = new Dictionary<string, string> { ["reason"] = "busy" },
            });
            return message.ReplyAsync(busy, serializer: NatsRawSerializer<byte[]>.Default);
        }
        _ = AnswerAsync(message);
        return ValueTask.CompletedTask;
    }

    private async Task AnswerAsync(NatsSvcMsg<byte[]> message)
    {
        try
        {
            var reply = await _dispatch(message.Data ?? []).WaitAsync(ReplyBound, TimeProvider.System).ConfigureAwait(false);
            if (string.IsNullOrEmpty(message.ReplyTo)) return; // a publish without a reply subject: nobody to answer
            await message.ReplyAsync(reply, serializer: NatsRawSerializer<byte[]>.Default).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
            LogReplyFailed(ex.Message);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_service is { } service) await service.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving registry requests over NATS on {Subject} (service {Service})")]
    private partial void LogServing(string subject, string service);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A reply over NATS could not be sent: {Reason}")]
    private partial void LogReplyFailed(string reason);
}
