using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>
/// How <see cref="RegistryClient"/> sends one request envelope and receives its reply: a ZeroMQ DEALER
/// (<see cref="RegistryRequestChannel"/>) or NATS request/reply (<see cref="NatsRegistryRequestChannel"/>). One attempt
/// per call; retries under the same request id are the client's.
/// </summary>
internal interface IRegistryRequestTransport : IAsyncDisposable
{
    /// <summary>Requests awaiting a reply.</summary>
    int InFlight { get; }

    /// <summary>Connections the registry closed during a handshake since the last reply (ZeroMQ CURVE mismatches); 0 elsewhere.</summary>
    int DropsWithoutReply { get; }

    /// <summary>Test seam: when set and returning false for a reply, the reply is dropped as if lost on the wire.</summary>
    Func<RegistryEnvelope, bool>? ReplyFilter { get; set; }

    /// <summary>Sends <paramref name="frame"/> and waits for the reply with <paramref name="requestId"/>; <see cref="TimeoutException"/> when none came in time.</summary>
    Task<RegistryEnvelope> ExchangeAsync(string requestId, byte[] frame, CancellationToken cancellationToken);

    /// <summary>Forgets <paramref name="requestId"/> once its caller is done with it.</summary>
    void Complete(string requestId);
}
