using System.Collections.Concurrent;
using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;

namespace Onex.Tests.Client;

/// <summary>
/// A ROUTER socket on a real loopback port that answers the way a test script says: with a reply frame, or not
/// at all (a lost reply). It lets client tests pin down correlation and retry behaviour that a well-behaved
/// registry never shows on demand.
/// </summary>
internal sealed class ScriptedRegistry : IDisposable
{
    private readonly RouterSocket _socket = new();
    private readonly NetMQQueue<(byte[] Identity, byte[] Frame)> _outbox = new();
    private readonly NetMQPoller _poller;
    private readonly Func<ScriptedRegistry, byte[], RegistryEnvelope, byte[]?> _script;

    /// <param name="script">Given each request, returns the reply frame, or null to stay silent.</param>
    public ScriptedRegistry(Func<ScriptedRegistry, byte[], RegistryEnvelope, byte[]?> script)
    {
        _script = script;
        _socket.Bind("tcp://127.0.0.1:0");
        Endpoint = _socket.Options.LastEndpoint!;
        _socket.ReceiveReady += (_, _) => Receive();
        _outbox.ReceiveReady += (_, _) =>
        {
            while (_outbox.TryDequeue(out var item, TimeSpan.Zero))
                _socket.SendMoreFrame(item.Identity).SendFrame(item.Frame);
        };
        _poller = new NetMQPoller { _socket, _outbox };
        _poller.RunAsync("scripted-registry", isBackgroundThread: true);
    }

    public string Endpoint { get; }

    /// <summary>Every request received, in arrival order.</summary>
    public ConcurrentQueue<RegistryEnvelope> Received { get; } = new();

    /// <summary>Sends <paramref name="frame"/> to the peer <paramref name="identity"/> later (from any thread).</summary>
    public void SendLater(byte[] identity, byte[] frame) => _outbox.Enqueue((identity, frame));

    /// <summary>A reply to <paramref name="request"/> carrying <paramref name="body"/>.</summary>
    public static byte[] Reply<T>(RegistryEnvelope request, T body) => RegistryCodec.Encode(request.RequestId, request.ClientId, body);

    public void Dispose()
    {
        _poller.Stop();
        _poller.Dispose();
        _outbox.Dispose();
        _socket.Dispose();
    }

    private void Receive()
    {
        var frames = new List<byte[]>(2);
        while (_socket.TryReceiveMultipartBytes(TimeSpan.Zero, ref frames, 2))
        {
            var identity = frames[0];
            var envelope = RegistryCodec.Decode(frames[^1]);
            Received.Enqueue(envelope);
            if (_script(this, identity, envelope) is { } reply)
                _socket.SendMoreFrame(identity).SendFrame(reply);
        }
    }
}
