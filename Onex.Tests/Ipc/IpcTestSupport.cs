using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;

namespace Onex.Tests.Ipc;

/// <summary>A frame as a test reads it off the wire, without the library's reader.</summary>
public sealed record RawFrame(byte Type, byte[] Body)
{
    public string ErrorCode => Encoding.ASCII.GetString(Body, 1, Body[0]);
}

/// <summary>
/// A hand-driven end of a bus connection: a raw peer of a real host, or (accepted by <see cref="RawIpcHost"/>) a
/// fake host for a real participant. Writes whatever bytes a test gives it and reads frames with its own parser.
/// </summary>
public sealed class RawIpcPeer : IAsyncDisposable
{
    public const byte Hello = 0x01, Welcome = 0x02, Subscribe = 0x10, Subscribed = 0x11, Unsubscribe = 0x12,
        Publish = 0x23, Event = 0x24, Dropped = 0x22, Error = 0x7F,
        // Protocol version 1's unnumbered event frames, refused by version 2.
        PublishV1 = 0x20, EventV1 = 0x21;

    /// <summary>The protocol version these helpers speak.</summary>
    public const ushort Version = 2;

    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    public RawIpcPeer(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public static async Task<RawIpcPeer> ConnectAsync(string socketPath, int? receiveBufferBytes = null)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        if (receiveBufferBytes is { } size) socket.ReceiveBufferSize = size;
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        return new RawIpcPeer(socket);
    }

    /// <summary>A frame: 4-byte big-endian length (type + body), type, body.</summary>
    public static byte[] Frame(byte type, ReadOnlySpan<byte> body)
    {
        var frame = new byte[5 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(1 + body.Length));
        frame[4] = type;
        body.CopyTo(frame.AsSpan(5));
        return frame;
    }

    public static byte[] HelloFrame(string nodeId = "raw-peer", ushort version = Version, uint maxFrameBytes = 1 << 20)
    {
        var body = new byte[6 + Encoding.UTF8.GetByteCount(nodeId)];
        BinaryPrimitives.WriteUInt16BigEndian(body, version);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(2), maxFrameBytes);
        Encoding.UTF8.GetBytes(nodeId, body.AsSpan(6));
        return Frame(Hello, body);
    }

    public static byte[] WelcomeFrame(string busName, uint maxFrameBytes = 1 << 20)
    {
        var frame = HelloFrame(busName, Version, maxFrameBytes);
        frame[4] = Welcome;
        return frame;
    }

    public static byte[] SubscribeFrame(uint id, string pattern, bool lossless)
    {
        var body = new byte[5 + Encoding.UTF8.GetByteCount(pattern)];
        BinaryPrimitives.WriteUInt32BigEndian(body, id);
        body[4] = lossless ? (byte)1 : (byte)0;
        Encoding.UTF8.GetBytes(pattern, body.AsSpan(5));
        return Frame(Subscribe, body);
    }

    public static byte[] IdFrame(byte type, uint id)
    {
        var body = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(body, id);
        return Frame(type, body);
    }

    public static byte[] DroppedFrame(uint id, long count)
    {
        var body = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(body, id);
        BinaryPrimitives.WriteInt64BigEndian(body.AsSpan(4), count);
        return Frame(Dropped, body);
    }

    /// <summary>A PUBLISH or EVENT body: publisher id, sequence number (both u64, big-endian), then the event's codec bytes.</summary>
    public static byte[] EventBody(ulong publisherId, ulong sequence, ReadOnlySpan<byte> eventBytes)
    {
        var body = new byte[16 + eventBytes.Length];
        BinaryPrimitives.WriteUInt64BigEndian(body, publisherId);
        BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(8), sequence);
        eventBytes.CopyTo(body.AsSpan(16));
        return body;
    }

    /// <summary>A numbered event frame of <paramref name="type"/> (PUBLISH or EVENT) for <paramref name="evt"/>.</summary>
    public static byte[] EventFrame(byte type, Onex.Events.OnexEvent evt, ulong publisherId = 1, ulong sequence = 1) =>
        Frame(type, EventBody(publisherId, sequence, Onex.Events.OnexEventCodec.Default.Encode(evt)));

    /// <summary>The event in a PUBLISH or EVENT body (after the publisher id and sequence number).</summary>
    public static Onex.Events.OnexEvent DecodeEvent(byte[] body) => Onex.Events.OnexEventCodec.Default.Decode(body.AsMemory(16));

    public async Task SendAsync(byte[] bytes) => await Socket.SendAsync(bytes, SocketFlags.None);

    /// <summary>Sends HELLO and reads the host's WELCOME.</summary>
    public async Task HandshakeAsync(string nodeId = "raw-peer")
    {
        await SendAsync(HelloFrame(nodeId));
        var welcome = await ReadFrameAsync() ?? throw new AssertionException("The host closed the connection instead of sending WELCOME.");
        Assert.That(welcome.Type, Is.EqualTo(Welcome), "the host's answer to HELLO");
    }

    /// <summary>The next frame, or null when the peer closed the connection (or reset it).</summary>
    public async Task<RawFrame?> ReadFrameAsync()
    {
        var header = new byte[5];
        if (!await ReadExactlyAsync(header)) return null;
        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        var body = new byte[length - 1];
        if (!await ReadExactlyAsync(body)) throw new AssertionException("The connection ended inside a frame.");
        return new RawFrame(header[4], body);
    }

    /// <summary>Reads frames until an ERROR frame, then asserts the connection ends; returns the error code.</summary>
    public async Task<string> ReadErrorThenEndAsync()
    {
        while (true)
        {
            var frame = await ReadFrameAsync() ?? throw new AssertionException("The connection ended without an ERROR frame.");
            if (frame.Type != Error) continue;
            Assert.That(await ReadFrameAsync(), Is.Null, "the connection should close after the ERROR frame");
            return frame.ErrorCode;
        }
    }

    public ValueTask DisposeAsync()
    {
        Socket.Dispose();
        return default;
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer)
    {
        var read = 0;
        using var timeout = new CancellationTokenSource(ReadTimeout);
        while (read < buffer.Length)
        {
            int n;
            try
            {
                n = await Socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, timeout.Token);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                // A Unix socket closed with unread data resets its peer; for these tests that is a close.
                n = 0;
            }
            catch (OperationCanceledException)
            {
                throw new AssertionException($"No data for {ReadTimeout.TotalSeconds}s while reading a frame ({read} of {buffer.Length} bytes).");
            }
            if (n == 0)
            {
                if (read == 0) return false;
                throw new AssertionException("The connection ended inside a frame.");
            }
            read += n;
        }
        return true;
    }
}

/// <summary>A fake host: a listening socket in a private directory, for driving a real participant frame by frame.</summary>
[SupportedOSPlatform("linux")]
public sealed class RawIpcHost : IDisposable
{
    private readonly Socket _listener;

    public RawIpcHost(IpcTestRoot root, string busName)
    {
        SocketPath = Path.Combine(root.CreateBusDirectory(busName), "bus.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen();
    }

    public string SocketPath { get; }

    public async Task<RawIpcPeer> AcceptAsync() =>
        new(await _listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10)));

    public void Dispose() => _listener.Dispose();
}

/// <summary>libc calls the tests need to set up ownership cases.</summary>
public static class TestNative
{
    [DllImport("libc", SetLastError = true)]
    public static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int chown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint owner, uint group);

    public static void Chown(string path, uint owner, uint group)
    {
        if (chown(path, owner, group) != 0)
            throw new IOException($"chown('{path}') failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
