using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Onex.Errors;

namespace Onex.Transports.Ipc;

/// <summary>
/// Reads frames from a connected socket into a pooled buffer. Several frames arriving together are handed out
/// from one receive without another system call; a frame larger than the buffer gets a bigger pooled buffer for
/// as long as it needs one. Read loops run on a dedicated thread and use the blocking <see cref="ReadFrame"/>;
/// <see cref="ReadFrameAsync"/> serves handshakes on the thread pool. Not thread-safe: one reader at a time.
/// The reader holds a reference on the socket handle until disposed, so a concurrent <see cref="Socket.Dispose()"/>
/// shuts the socket down (waking a blocked read) but cannot close the descriptor under it.
/// </summary>
internal sealed class IpcFrameReader : IDisposable
{
    private const int DefaultBufferBytes = 64 * 1024;

    private readonly Socket _socket;
    private readonly SafeHandle _handle;
    private readonly int _maxFrameBytes;
    private byte[] _buffer;
    private int _start;
    private int _end;

    public IpcFrameReader(Socket socket, int maxFrameBytes)
    {
        _socket = socket;
        _handle = socket.SafeHandle;
        var added = false;
        _handle.DangerousAddRef(ref added);
        _maxFrameBytes = maxFrameBytes;
        _buffer = ArrayPool<byte>.Shared.Rent(DefaultBufferBytes);
    }

    /// <summary>
    /// Blocks the calling thread until the next frame, or returns <see cref="IpcFrame.IsEndOfStream"/> when the peer
    /// closed the connection between frames (or the socket was shut down). The body stays valid until the next call.
    /// </summary>
    /// <exception cref="MessageTooLargeException">The peer announced a frame above the limit.</exception>
    /// <exception cref="MalformedMessageException">A zero length, or the stream ended inside a frame.</exception>
    /// <exception cref="IOException">The connection failed.</exception>
    public IpcFrame ReadFrame()
    {
        while (true)
        {
            if (TryTakeFrame(out var frame)) return frame;
            MakeRoom();
            var received = UnixNative.Receive(_handle, _buffer.AsSpan(_end));
            if (received == 0) return EndOfStream();
            _end += received;
        }
    }

    /// <summary>
    /// Returns the next frame, or <see cref="IpcFrame.IsEndOfStream"/> when the peer closed the connection between
    /// frames. The frame's body stays valid until the next call.
    /// </summary>
    /// <exception cref="MessageTooLargeException">The peer announced a frame above the limit.</exception>
    /// <exception cref="MalformedMessageException">A zero length, or the stream ended inside a frame.</exception>
    /// <exception cref="SocketException">The connection failed.</exception>
    public ValueTask<IpcFrame> ReadFrameAsync(CancellationToken cancellationToken)
    {
        // Fast path: a whole frame is already buffered, no state machine needed.
        return TryTakeFrame(out var frame) ? new ValueTask<IpcFrame>(frame) : ReadSlowAsync(cancellationToken);
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer!, null);
        if (buffer is null) return;
        ArrayPool<byte>.Shared.Return(buffer);
        _handle.DangerousRelease();
    }

    private async ValueTask<IpcFrame> ReadSlowAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            MakeRoom();
            var received = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (received == 0) return EndOfStream();
            _end += received;
            if (TryTakeFrame(out var frame)) return frame;
        }
    }

    private IpcFrame EndOfStream()
    {
        if (_end == _start) return default;
        throw new MalformedMessageException($"The connection ended inside a frame ({_end - _start} bytes of it received).");
    }

    private bool TryTakeFrame(out IpcFrame frame)
    {
        var available = _end - _start;
        if (available >= 4)
        {
            var length = ReadLength();
            if (available - 4 >= length)
            {
                frame = new IpcFrame((IpcFrameType)_buffer[_start + 4], _buffer.AsMemory(_start + 5, (int)length - 1));
                _start += 4 + (int)length;
                return true;
            }
        }
        frame = default;
        return false;
    }

    private uint ReadLength()
    {
        var length = BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start));
        if (length == 0)
            throw new MalformedMessageException("A frame length of 0 (every frame has at least a type byte).");
        if (length > (uint)_maxFrameBytes)
            throw new MessageTooLargeException(
                $"Frame of {length} bytes exceeds the limit of {_maxFrameBytes} bytes.",
                new Dictionary<string, string> { ["size"] = length.ToString(), ["limit"] = _maxFrameBytes.ToString() });
        return length;
    }

    // Ensures free space after _end for the rest of the current frame (or at least some bytes).
    private void MakeRoom()
    {
        var pending = _end - _start;
        var needed = pending >= 4 ? 4 + (int)ReadLength() : DefaultBufferBytes;
        if (pending == 0)
        {
            _start = _end = 0;
            if (_buffer.Length > DefaultBufferBytes)
                Replace(ArrayPool<byte>.Shared.Rent(DefaultBufferBytes));
            return;
        }
        if (needed > _buffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(needed);
            _buffer.AsSpan(_start, pending).CopyTo(bigger);
            Replace(bigger);
        }
        else if (_buffer.Length - _start < needed || _end == _buffer.Length)
        {
            _buffer.AsSpan(_start, pending).CopyTo(_buffer);
        }
        else
        {
            return;
        }
        _start = 0;
        _end = pending;
    }

    private void Replace(byte[] buffer)
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = buffer;
    }
}
