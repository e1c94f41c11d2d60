using System.Text;
using NetMQ;
using NetMQ.Sockets;
using Onex.Events;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.Testing.Registry;

namespace Onex.Tests.Registry;

/// <summary>A DEALER talking to a registry node the way any client would: raw frames, RegistryCodec envelopes.</summary>
internal sealed class TestDealer : IDisposable
{
    public static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);

    private readonly DealerSocket _socket = new();
    private int _nextId;

    public TestDealer(string endpoint, string? clientId = null)
    {
        ClientId = clientId ?? "test-" + Guid.NewGuid().ToString("N")[..8];
        _socket.Options.Linger = TimeSpan.Zero;
        _socket.Options.SendHighWatermark = 100_000;
        _socket.Options.ReceiveHighWatermark = 100_000;
        _socket.Connect(endpoint);
    }

    public string ClientId { get; }

    public string NextRequestId() => "r" + Interlocked.Increment(ref _nextId);

    /// <summary>The access token sent with every request (a registry with an auth file); null: none.</summary>
    public string? Token { get; set; }
    /// <summary>The envelope's <c>tenant</c> (PROTOCOL.md 16.3), or null.</summary>
    public string? Tenant { get; set; }

    public void Send<T>(string requestId, T body, int protocolVersion = ProtocolVersion.Current) =>
        _socket.SendFrame(RegistryCodec.Encode(requestId, ClientId, body, protocolVersion, Token, tenant: Tenant));

    public void SendFrames(params byte[][] frames)
    {
        for (var i = 0; i < frames.Length - 1; i++) _socket.SendMoreFrame(frames[i]);
        _socket.SendFrame(frames[^1]);
    }

    /// <summary>Receives one reply frame; fails the test if none arrives in time.</summary>
    public byte[] ReceiveFrame()
    {
        if (!_socket.TryReceiveFrameBytes(ReplyTimeout, out var frame, out var more))
            Assert.Fail($"no reply from the registry within {ReplyTimeout.TotalSeconds} s");
        Assert.That(more, Is.False, "a reply must be exactly one frame");
        return frame!;
    }

    /// <summary>Receives one whole multipart reply; fails the test if none arrives in time.</summary>
    public List<byte[]> ReceiveFrames()
    {
        var message = new NetMQMessage();
        if (!_socket.TryReceiveMultipartMessage(ReplyTimeout, ref message))
            Assert.Fail($"no reply from the registry within {ReplyTimeout.TotalSeconds} s");
        return message!.Select(f => f.ToByteArray()).ToList();
    }

    public RegistryEnvelope Receive() => DecodeReply(ReceiveFrame());

    /// <summary>The next reply if one arrives within <paramref name="timeout"/>; null otherwise.</summary>
    public RegistryEnvelope? TryReceive(TimeSpan timeout) =>
        _socket.TryReceiveFrameBytes(timeout, out var frame) ? DecodeReply(frame!) : null;

    /// <summary>
    /// Decodes a reply envelope, allowing the empty request and client ids an Error reply carries when the
    /// request they answer could not be read.
    /// </summary>
    public static RegistryEnvelope DecodeReply(byte[] frame)
    {
        var reader = new MessagePack.MessagePackReader(frame);
        var count = reader.ReadMapHeader();
        int version = 0;
        string? messageType = null, requestId = null, clientId = null;
        ReadOnlyMemory<byte> body = default;
        for (var i = 0; i < count; i++)
        {
            switch (reader.ReadString())
            {
                case "protocolVersion": version = reader.ReadInt32(); break;
                case "messageType": messageType = reader.ReadString(); break;
                case "requestId": requestId = reader.ReadString(); break;
                case "clientId": clientId = reader.ReadString(); break;
                case "body":
                    var start = (int)reader.Consumed;
                    reader.Skip();
                    body = frame.AsMemory(start, (int)reader.Consumed - start);
                    break;
                default: reader.Skip(); break;
            }
        }
        Assert.That(reader.End, Is.True, "trailing bytes after the reply envelope");
        Assert.That(version, Is.EqualTo(ProtocolVersion.Current), "the reply's protocol version");
        Assert.That(messageType, Is.Not.Null, "the reply lacks a message type");
        Assert.That(requestId, Is.Not.Null, "the reply lacks a request id");
        Assert.That(clientId, Is.Not.Null, "the reply lacks a client id");
        return new RegistryEnvelope { ProtocolVersion = version, MessageType = messageType!, RequestId = requestId!, ClientId = clientId!, Body = body };
    }

    /// <summary>Sends a request and returns the reply envelope (whatever its type).</summary>
    public RegistryEnvelope Request<T>(T body)
    {
        var requestId = NextRequestId();
        Send(requestId, body);
        var reply = Receive();
        Assert.That(reply.RequestId, Is.EqualTo(requestId), "the reply answers another request");
        return reply;
    }

    /// <summary>Sends a request that must succeed with a <typeparamref name="TReply"/>.</summary>
    public TReply Call<TRequest, TReply>(TRequest body) where TReply : class => Expect<TReply>(Request(body));

    public static TReply Expect<TReply>(RegistryEnvelope reply) where TReply : class
    {
        if (reply.MessageType == MessageTypes.Of<Error>())
        {
            var error = reply.BodyAs<Error>();
            Assert.Fail($"expected {MessageTypes.Of<TReply>()}, got Error {error.Code}: {error.Message}");
        }
        Assert.That(reply.MessageType, Is.EqualTo(MessageTypes.Of<TReply>()));
        return reply.BodyAs<TReply>();
    }

    public static Error ExpectError(RegistryEnvelope reply)
    {
        Assert.That(reply.MessageType, Is.EqualTo(MessageTypes.Of<Error>()), "expected an Error reply");
        return reply.BodyAs<Error>();
    }

    /// <summary>The registry's state in a comparable form (everything but the time it was taken).</summary>
    public byte[] StateBytes()
    {
        var snapshot = Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        return RegistryCodec.SerializeBody(snapshot with { TakenAt = 0 });
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>A SUB socket on the registry's PUB endpoint, decoding registry events.</summary>
internal sealed class TestSubscriber : IDisposable
{
    private readonly SubscriberSocket _socket = new();

    public TestSubscriber(string endpoint, string prefix = ChangeTypes.TopicPrefix)
    {
        _socket.Options.Linger = TimeSpan.Zero;
        _socket.Connect(endpoint);
        _socket.Subscribe(prefix);
    }

    /// <summary>Receives the next event within <paramref name="timeout"/>, or null.</summary>
    public (string Topic, OnexEvent Event)? TryReceive(TimeSpan timeout)
    {
        var message = new NetMQMessage();
        if (!_socket.TryReceiveMultipartMessage(timeout, ref message)) return null;
        Assert.That(message.FrameCount, Is.EqualTo(2), "a broadcast is [topic][event]");
        return (Encoding.UTF8.GetString(message[0].ToByteArray()), OnexEventCodec.Default.Decode(message[1].ToByteArray()));
    }

    /// <summary>Waits for the first event matching <paramref name="match"/>, skipping others; fails the test after <paramref name="timeout"/>.</summary>
    public OnexEvent WaitFor(Func<string, OnexEvent, bool> match, TimeSpan timeout, string what)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)(timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (TimeProvider.System.GetTimestamp() < deadline)
        {
            if (TryReceive(TimeSpan.FromMilliseconds(100)) is var (topic, evt) && match(topic, evt)) return evt;
        }
        Assert.Fail($"no {what} was broadcast within {timeout.TotalSeconds} s");
        throw new InvalidOperationException("unreachable");
    }

    public RegistryChange WaitForChange(string changeType, TimeSpan timeout, Func<RegistryChange, bool>? match = null)
    {
        var evt = WaitFor((topic, e) => topic == ChangeTypes.TopicOf(changeType)
            && (match is null || match(RegistryCodec.DeserializeBody<RegistryChange>(e.Payload))), timeout, changeType);
        return RegistryCodec.DeserializeBody<RegistryChange>(evt.Payload);
    }

    public RegistryHeartbeat WaitForHeartbeat(TimeSpan timeout, Func<RegistryHeartbeat, bool>? match = null)
    {
        var evt = WaitFor((topic, e) => topic == ChangeTypes.HeartbeatTopic
            && (match is null || match(RegistryCodec.DeserializeBody<RegistryHeartbeat>(e.Payload))), timeout, "heartbeat");
        return RegistryCodec.DeserializeBody<RegistryHeartbeat>(evt.Payload);
    }

    public void Dispose() => _socket.Dispose();
}

internal static class TestNodes
{
    /// <summary>Options for a node on OS-chosen loopback ports with fast heartbeats.</summary>
    public static RegistryNodeOptions Options(Func<RegistryNodeOptions, RegistryNodeOptions>? change = null)
    {
        var options = RegistryNodeOptions.Default with
        {
            Endpoint = "tcp://127.0.0.1:0",
            PubEndpoint = "tcp://127.0.0.1:0",
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
            Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
            // Stands for "a block of its own": StartAsync swaps in the test's reserved block.
            Leases = LeaseOptions.Default with { PortRange = OnexTestEnvironment.PrivatePortRange },
        };
        return change is null ? options : change(options);
    }

    public static async Task<RegistryNodeHost> StartAsync(Func<RegistryNodeOptions, RegistryNodeOptions>? change = null, TimeProvider? time = null) =>
        await RegistryNodeHost.StartAsync(await Client.TestRegistry.PoolOfItsOwnAsync(Options(change)), timeProvider: time);
}
