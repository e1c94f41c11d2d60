using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// A raw NetMQ DEALER speaking the registry protocol with <see cref="RegistryCodec"/>, as any client would: one frame
/// per request, replies matched by request id. Used from one thread only (NetMQ sockets are not thread-safe).
/// Request ids never repeat within a process, so no request is ever answered from the registry's reply cache.
/// </summary>
internal sealed class BenchDealer : IDisposable
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);
    private static long _nextRequest;

    private readonly DealerSocket _socket = new();

    /// <param name="endpoint">The registry's ROUTER endpoint.</param>
    /// <param name="serverKey">The registry's CURVE public key when it encrypts; null for a plain registry.</param>
    public BenchDealer(string endpoint, string? serverKey = null)
    {
        ClientId = "bench/" + Guid.NewGuid().ToString("N")[..8];
        Onex.Transports.Zmq.ZmqCurve.Apply(_socket, serverKeys: null, serverKey);
        _socket.Options.Linger = TimeSpan.Zero;
        // Same high-water marks as the registry's ROUTER, so a window of a thousand never hits them.
        _socket.Options.SendHighWatermark = 100_000;
        _socket.Options.ReceiveHighWatermark = 100_000;
        _socket.Connect(endpoint);
    }

    public string ClientId { get; }

    /// <summary>The access token sent with every request (a registry with an auth file); null: none.</summary>
    public string? Token { get; init; }

    /// <summary>Encodes <paramref name="body"/> in an envelope with a fresh request id and sends it.</summary>
    public void Send<T>(T body) =>
        _socket.SendFrame(RegistryCodec.Encode("r" + Interlocked.Increment(ref _nextRequest), ClientId, body, token: Token));

    /// <summary>Receives and decodes the next reply envelope; throws when none arrives in time.</summary>
    public RegistryEnvelope Receive()
    {
        if (!_socket.TryReceiveFrameBytes(ReplyTimeout, out var frame))
            throw new TimeoutException($"No reply within {ReplyTimeout.TotalSeconds} s.");
        return RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
    }

    /// <summary>Sends one request and waits for its reply, which must be a <typeparamref name="TReply"/>.</summary>
    public TReply Call<TRequest, TReply>(TRequest body) where TReply : class
    {
        Send(body);
        return Expect<TReply>(Receive());
    }

    /// <summary>The reply's body as <typeparamref name="TReply"/>; an Error reply or another type throws, naming it.</summary>
    public static TReply Expect<TReply>(RegistryEnvelope reply) where TReply : class
    {
        if (reply.MessageType == MessageTypes.Of<TReply>()) return reply.BodyAs<TReply>();
        throw Unexpected(reply, MessageTypes.Of<TReply>());
    }

    public static InvalidOperationException Unexpected(RegistryEnvelope reply, string expected)
    {
        var what = reply.MessageType == MessageTypes.Of<Error>() && reply.BodyAs<Error>() is { } error
            ? $"Error {error.Code}: {error.Message}"
            : reply.MessageType;
        return new InvalidOperationException($"Expected {expected}, got {what}.");
    }

    public void Dispose() => _socket.Dispose();
}
