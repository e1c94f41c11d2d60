using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Onex.Tests.Registry;

/// <summary>
/// A ZeroMQ peer written from the ZMTP 3.0 spec (rfc.zeromq.org/spec/23) on a plain TCP socket, NULL mechanism: it
/// sends whatever frames a test asks for, which a NetMQ socket would not (many subscriptions without a table of its
/// own; a message whose last frame never comes, where NetMQ sends nothing until it is finished).
/// </summary>
internal sealed class RawZmtpPeer : IDisposable
{
    private const byte More = 0x01;
    private const byte Long = 0x02;
    private const byte Command = 0x04;

    private readonly TcpClient _client = new();
    private readonly NetworkStream _stream;
    private readonly BufferedStream _out;

    /// <summary>Connects to <paramref name="endpoint"/> (<c>tcp://host:port</c>) as a <paramref name="socketType"/> (e.g. SUB, DEALER).</summary>
    public RawZmtpPeer(string endpoint, string socketType)
    {
        var uri = new Uri(endpoint.Replace("tcp://", "http://", StringComparison.Ordinal));
        _client.Connect(uri.Host, uri.Port);
        _stream = _client.GetStream();
        _out = new BufferedStream(_stream, 64 * 1024);
        var greeting = new byte[64];
        greeting[0] = 0xFF;
        greeting[9] = 0x7F;
        greeting[10] = 3; // version 3.0
        Encoding.ASCII.GetBytes("NULL").CopyTo(greeting, 12);
        _out.Write(greeting);
        // READY with its Socket-Type property.
        var ready = new List<byte> { 5 };
        ready.AddRange("READY"u8.ToArray());
        ready.Add(11);
        ready.AddRange("Socket-Type"u8.ToArray());
        var type = Encoding.ASCII.GetBytes(socketType);
        ready.AddRange(new byte[] { 0, 0, 0, (byte)type.Length });
        ready.AddRange(type);
        _out.WriteByte(Command);
        _out.WriteByte((byte)ready.Count);
        _out.Write(ready.ToArray());
        _out.Flush();
        ReadExactly(64); // the other side's greeting
    }

    /// <summary>Writes one frame (buffered: <see cref="Flush"/> or a read sends it), with MORE set when <paramref name="more"/>.</summary>
    public void Send(ReadOnlySpan<byte> frame, bool more = false)
    {
        var flags = more ? More : (byte)0;
        if (frame.Length <= 255)
        {
            _out.WriteByte(flags);
            _out.WriteByte((byte)frame.Length);
        }
        else
        {
            _out.WriteByte((byte)(flags | Long));
            Span<byte> size = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(size, frame.Length);
            _out.Write(size);
        }
        _out.Write(frame);
    }

    public void Flush() => _out.Flush();

    /// <summary>
    /// Writes one whole frame (MORE clear) and flushes it, or returns false when the other side has not taken it within
    /// <paramref name="timeout"/> (TCP pushes back: the peer stopped reading). After false the connection is mid-frame:
    /// dispose it.
    /// </summary>
    public bool TrySend(ReadOnlySpan<byte> frame, TimeSpan timeout)
    {
        _stream.WriteTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            Send(frame);
            _out.Flush();
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>What became of a frame written with <see cref="SendFrame"/>.</summary>
    public enum Outcome
    {
        Sent,
        /// <summary>Not taken within the timeout: the other side stopped reading (TCP pushes back).</summary>
        PushedBack,
        /// <summary>The other side closed the connection.</summary>
        Closed,
    }

    /// <summary>
    /// Writes one frame (MORE set when <paramref name="more"/>) and flushes it; tells a peer that stopped reading from one
    /// that closed the connection. After anything but <see cref="Outcome.Sent"/> the connection is mid-frame: dispose it.
    /// </summary>
    public Outcome SendFrame(ReadOnlySpan<byte> frame, bool more, TimeSpan timeout)
    {
        _stream.WriteTimeout = (int)timeout.TotalMilliseconds;
        var began = Stopwatch.GetTimestamp();
        try
        {
            Send(frame, more);
            _out.Flush();
            return Outcome.Sent;
        }
        catch (IOException)
        {
            // A write that failed before its timeout met a closed connection (reset, broken pipe); one that waited it out
            // was pushed back (the error code of either varies with where the write was when it failed).
            return Stopwatch.GetElapsedTime(began) >= timeout * 0.9 ? Outcome.PushedBack : Outcome.Closed;
        }
    }

    /// <summary>Sends what is buffered, then reads the next message frame (commands skipped); <c>More</c> tells whether another frame of its message follows.</summary>
    public (byte[] Body, bool More) ReadFrame(TimeSpan timeout)
    {
        _out.Flush();
        _stream.ReadTimeout = (int)timeout.TotalMilliseconds;
        while (true)
        {
            var flags = ReadExactly(1)[0];
            var size = (flags & Long) != 0 ? BinaryPrimitives.ReadInt64BigEndian(ReadExactly(8)) : ReadExactly(1)[0];
            var body = ReadExactly(checked((int)size));
            if ((flags & Command) == 0) return (body, (flags & More) != 0);
        }
    }

    private byte[] ReadExactly(int count)
    {
        var buffer = new byte[count];
        _stream.ReadExactly(buffer);
        return buffer;
    }

    public void Dispose() => _client.Dispose();
}
