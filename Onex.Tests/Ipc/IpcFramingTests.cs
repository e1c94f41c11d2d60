using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.Versioning;
using Onex.Errors;
using Onex.Events;
using Onex.Transports.Ipc;

namespace Onex.Tests.Ipc;

/// <summary>The frame layer on a real socket pair: how bytes arriving in any split become frames, and the limits.</summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcFramingTests
{
    private const int MaxFrame = 1 << 20;

    private IpcTestRoot _root = null!;
    private Socket _listener = null!;
    private Socket _writer = null!;
    private Socket _readerSocket = null!;

    [SetUp]
    public async Task ConnectPair()
    {
        _root = new IpcTestRoot();
        var path = Path.Combine(_root.CreateBusDirectory("framing"), "pair.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen();
        _writer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var accepting = _listener.AcceptAsync();
        await _writer.ConnectAsync(new UnixDomainSocketEndPoint(path));
        _readerSocket = await accepting;
    }

    [TearDown]
    public void Close()
    {
        _writer.Dispose();
        _readerSocket.Dispose();
        _listener.Dispose();
        _root.Dispose();
    }

    [Test]
    public async Task Frame_sent_one_byte_at_a_time_is_reassembled()
    {
        using var reader = new IpcFrameReader(_readerSocket, MaxFrame);
        var frame = RawIpcPeer.Frame(0x21, [10, 20, 30, 40, 50]);

        var reading = reader.ReadFrameAsync(CancellationToken.None).AsTask();
        foreach (var b in frame) await _writer.SendAsync(new[] { b }, SocketFlags.None);
        var read = await reading.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That((byte)read.Type, Is.EqualTo(0x21), "type");
            Assert.That(read.Body.ToArray(), Is.EqualTo(new byte[] { 10, 20, 30, 40, 50 }), "body");
        });
    }

    [Test]
    public async Task Several_frames_in_one_write_come_out_one_by_one_in_order()
    {
        using var reader = new IpcFrameReader(_readerSocket, MaxFrame);
        var frames = Enumerable.Range(1, 50).Select(i => RawIpcPeer.Frame(0x21, BitConverter.GetBytes(i))).ToArray();

        await _writer.SendAsync(frames.SelectMany(f => f).ToArray(), SocketFlags.None);

        for (var i = 1; i <= 50; i++)
        {
            var read = await reader.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(BitConverter.ToInt32(read.Body.Span), Is.EqualTo(i), $"frame {i}");
        }
    }

    [Test]
    public async Task Frame_larger_than_the_read_buffer_is_read_whole()
    {
        using var reader = new IpcFrameReader(_readerSocket, MaxFrame);
        var body = new byte[700_000];
        new Random(7).NextBytes(body);
        var frames = RawIpcPeer.Frame(0x21, body).Concat(RawIpcPeer.Frame(0x11, [0, 0, 0, 9])).ToArray();

        var sending = _writer.SendAsync(frames, SocketFlags.None);
        var big = await reader.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(big.Body.Span.SequenceEqual(body), Is.True, "the large body arrived changed");
        var small = await reader.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        await sending;

        Assert.That(small.Body.ToArray(), Is.EqualTo(new byte[] { 0, 0, 0, 9 }), "the frame after the large one");
    }

    [Test]
    public async Task Announced_length_above_the_limit_throws_MessageTooLarge()
    {
        using var reader = new IpcFrameReader(_readerSocket, 2048);
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header, 2049);

        await _writer.SendAsync(header, SocketFlags.None);

        Assert.That(async () => await reader.ReadFrameAsync(CancellationToken.None), Throws.InstanceOf<MessageTooLargeException>());
    }

    [Test]
    public async Task Connection_ending_inside_a_frame_throws_Malformed()
    {
        using var reader = new IpcFrameReader(_readerSocket, MaxFrame);

        await _writer.SendAsync(RawIpcPeer.Frame(0x21, new byte[100])[..50], SocketFlags.None);
        _writer.Shutdown(SocketShutdown.Send);

        Assert.That(async () => await reader.ReadFrameAsync(CancellationToken.None), Throws.InstanceOf<MalformedMessageException>());
    }

    [Test]
    public async Task Connection_ending_between_frames_is_the_end_of_stream()
    {
        using var reader = new IpcFrameReader(_readerSocket, MaxFrame);

        await _writer.SendAsync(RawIpcPeer.Frame(0x11, [0, 0, 0, 1]), SocketFlags.None);
        _writer.Shutdown(SocketShutdown.Send);

        Assert.That((await reader.ReadFrameAsync(CancellationToken.None)).IsEndOfStream, Is.False, "the complete frame");
        Assert.That((await reader.ReadFrameAsync(CancellationToken.None)).IsEndOfStream, Is.True, "then the end");
    }

    [Test]
    public void Event_frame_layout_is_length_type_publisher_sequence_then_codec_bytes()
    {
        var evt = OnexEvent.Create("layout.check", new byte[] { 1, 2, 3 });

        var frame = IpcFrames.EncodeEvent(IpcFrameType.Publish, evt, OnexEventCodec.Default, MaxFrame);

        IpcFrames.WriteSequence(frame, 0x0102030405060708, 42);

        var codecBytes = OnexEventCodec.Default.Encode(evt);
        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(frame), Is.EqualTo(1 + 16 + codecBytes.Length), "big-endian length of type + body");
            Assert.That(frame[4], Is.EqualTo(0x23), "PUBLISH type byte (protocol version 2)");
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(frame.AsSpan(5)), Is.EqualTo(0x0102030405060708UL), "publisher id, big-endian");
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(frame.AsSpan(13)), Is.EqualTo(42UL), "sequence number, big-endian");
            Assert.That(frame[21..], Is.EqualTo(codecBytes), "then exactly the OnexEventCodec encoding");
        });
    }

    [Test]
    public void Decoded_event_does_not_share_memory_with_the_frame()
    {
        // The read buffer is reused for the next frame, so a decoded payload must be a copy.
        var frame = OnexEventCodec.Default.Encode(OnexEvent.Create("copy.check", new byte[] { 7, 7, 7 }));

        var evt = OnexEventCodec.Default.Decode(frame);
        Array.Clear(frame);

        Assert.That(evt.Payload.ToArray(), Is.EqualTo(new byte[] { 7, 7, 7 }));
    }
}
