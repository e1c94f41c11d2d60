using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Onex.Cli.Bench;

/// <summary>
/// The Unix-socket baseline: one connected pair of Unix domain stream sockets (<see cref="System.Net.Sockets"/>,
/// async sends and receives) carrying length-prefixed frames, <c>[u32 BE length][payload]</c>, the framing of the
/// bus's own protocol without its envelope. Throughput: one side sends each frame with its own send call, the other
/// receives into a 64 KiB buffer and parses what arrived. Round trip: one side sends a frame, the other echoes it.
/// </summary>
internal sealed class RawUnixSocketContender : IBenchContender
{
    private readonly Socket _sender;
    private readonly Socket _receiver;
    private readonly RawFrameReader _senderReader;
    private readonly RawFrameReader _receiverReader;
    private readonly byte[] _frame;

    private RawUnixSocketContender(Socket sender, Socket receiver, byte[] payload)
    {
        _sender = sender;
        _receiver = receiver;
        _senderReader = new RawFrameReader(sender, payload.Length);
        _receiverReader = new RawFrameReader(receiver, payload.Length);
        _frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(_frame, payload.Length);
        payload.CopyTo(_frame, 4);
    }

    public string Description => "raw Unix domain socket pair, length-prefixed frames";

    /// <summary>Listens on <paramref name="directory"/>/raw.sock, connects, accepts, and removes the socket file.</summary>
    public static async Task<RawUnixSocketContender> CreateAsync(string directory, byte[] payload, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, "raw.sock");
        var endpoint = new UnixDomainSocketEndPoint(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(endpoint);
            listener.Listen(1);
            var accepted = listener.AcceptAsync(cancellationToken);
            await client.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            var server = await accepted.ConfigureAwait(false);
            return new RawUnixSocketContender(client, server, payload);
        }
        catch
        {
            client.Dispose();
            throw;
        }
        finally
        {
            File.Delete(path);
        }
    }

    public async Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken)
    {
        EnsureDrained();
        var progress = new ReadProgress();
        var reader = Task.Run(() => ReceiveAsync(count, progress, cancellationToken), CancellationToken.None);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
            await SendAllAsync(_sender, _frame, cancellationToken).ConfigureAwait(false);
        await reader.ConfigureAwait(false);
        return progress.ToSample(count, started);
    }

    public async Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken)
    {
        EnsureDrained();
        using var responder = BenchResponder.Start(EchoAsync, cancellationToken, out var pingerToken);
        var samples = new long[count];
        var endSent = false;
        try
        {
            for (var i = 0; i < count; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await SendAllAsync(_sender, _frame, pingerToken).ConfigureAwait(false);
                _ = await _senderReader.ReadFrameAsync(pingerToken).ConfigureAwait(false)
                    ?? throw new IOException("The echoing socket closed the connection.");
                samples[i] = Stopwatch.GetTimestamp() - started;
            }
            // An empty frame tells the echo loop to end once it has read everything before it.
            await SendAllAsync(_sender, new byte[4], pingerToken).ConfigureAwait(false);
            endSent = true;
        }
        finally
        {
            await responder.StopAsync(cancel: !endSent).ConfigureAwait(false);
        }
        return samples;
    }

    public ValueTask DisposeAsync()
    {
        _sender.Dispose();
        _receiver.Dispose();
        return default;
    }

    /// <summary>
    /// A frame left over from the previous measurement would be read as this one's (a pong answering nothing, a data
    /// frame too many), so every measurement starts from empty buffers and sockets.
    /// </summary>
    private void EnsureDrained()
    {
        if (!_senderReader.IsEmpty || !_receiverReader.IsEmpty || _sender.Available > 0 || _receiver.Available > 0)
            throw new InvalidOperationException("The raw Unix socket pair still holds bytes from the previous measurement.");
    }

    private async Task ReceiveAsync(int count, ReadProgress progress, CancellationToken cancellationToken)
    {
        long received = 0;
        while (true)
        {
            while (received < count && _receiverReader.TryReadFrame(out _)) received++;
            progress.Update(received, Stopwatch.GetTimestamp());
            if (received == count || !await _receiverReader.FillAsync(cancellationToken).ConfigureAwait(false)) return;
        }
    }

    private async Task EchoAsync(CancellationToken cancellationToken)
    {
        while (await _receiverReader.ReadFrameAsync(cancellationToken).ConfigureAwait(false) is { Length: > 4 } frame)
            await SendAllAsync(_receiver, frame, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }
}

/// <summary>Reads length-prefixed frames from a stream socket through one buffer, as many per receive call as arrived.</summary>
internal sealed class RawFrameReader(Socket socket, int maxPayloadBytes)
{
    private readonly byte[] _buffer = new byte[Math.Max(64 * 1024, 2 * (maxPayloadBytes + 4))];
    private int _start;
    private int _end;

    /// <summary>True when no received bytes wait in the buffer.</summary>
    public bool IsEmpty => _start == _end;

    /// <summary>Takes the next whole frame (header included) from the buffer; it stays valid until the next fill.</summary>
    public bool TryReadFrame(out ReadOnlyMemory<byte> frame)
    {
        var available = _end - _start;
        if (available >= 4)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(_start));
            if (length < 0 || length > maxPayloadBytes)
                throw new InvalidDataException($"Frame length {length} is out of range 0..{maxPayloadBytes}.");
            if (available >= 4 + length)
            {
                frame = _buffer.AsMemory(_start, 4 + length);
                _start += 4 + length;
                return true;
            }
        }
        frame = default;
        return false;
    }

    /// <summary>Receives more bytes (moving a partial frame to the front first); false at end of stream.</summary>
    public async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        var received = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        _end += received;
        return received > 0;
    }

    /// <summary>The next frame, header included; null at end of stream.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (TryReadFrame(out var frame)) return frame;
            if (!await FillAsync(cancellationToken).ConfigureAwait(false)) return null;
        }
    }
}
