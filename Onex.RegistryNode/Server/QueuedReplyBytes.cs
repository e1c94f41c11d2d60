using System.Collections.Concurrent;
using NetMQ;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Counts, per requesting peer, the bytes of large replies ZeroMQ still holds for it (queued, not yet written to its
/// connection), so a peer that never reads cannot make the registry hold more than
/// <see cref="PeerBounds.QueuedReplyBytesPerPeer"/> of them (PROTOCOL.md section 14). ZeroMQ's own high-water mark
/// counts messages, and one reply can be 64 MiB.
/// </summary>
/// <remarks>
/// NetMQ copies each outgoing frame into a buffer taken from its process-wide <see cref="BufferPool"/> and returns the
/// buffer when the frame has been written out, or dropped with its connection. This pool allocates exactly like
/// NetMQ's default one and, for the buffers the registry thread marks while sending a large reply, credits the peer
/// back on return. Replies under <see cref="PeerBounds.LargeReplyBytes"/> are left to the high-water mark.
/// </remarks>
internal sealed class QueuedReplyBytes : IBufferPool
{
    /// <summary>The one pool of the process (NetMQ's pool is process-wide).</summary>
    public static readonly QueuedReplyBytes Instance = new();

    [ThreadStatic]
    private static string? t_marking;

    private readonly ConcurrentDictionary<byte[], string> _owners = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentDictionary<string, long> _byPeer = new(StringComparer.Ordinal);
    private long _total;

    private QueuedReplyBytes()
    {
    }

    /// <summary>Makes this the pool NetMQ takes frame buffers from (idempotent).</summary>
    public static void Install() => BufferPool.SetCustomBufferPool(Instance);

    /// <summary>Bytes of large replies queued for <paramref name="peer"/>.</summary>
    public long Of(string peer) => _byPeer.GetValueOrDefault(peer);

    /// <summary>Bytes of large replies queued for all peers.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>
    /// A message holding <paramref name="reply"/>, charged to <paramref name="peer"/> until NetMQ is done with it.
    /// The caller sends it (and closes it if the send fails).
    /// </summary>
    public Msg Charge(string peer, byte[] reply)
    {
        var msg = new Msg();
        t_marking = peer;
        try
        {
            msg.InitPool(reply.Length);
        }
        finally
        {
            t_marking = null;
        }
        reply.CopyTo(msg.Slice());
        return msg;
    }

    public byte[] Take(int size)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(size);
        var peer = t_marking;
        if (peer is not null)
        {
            _owners[buffer] = peer;
            _byPeer.AddOrUpdate(peer, size, (_, bytes) => bytes + size);
            Interlocked.Add(ref _total, size);
        }
        return buffer;
    }

    public void Return(byte[] buffer)
    {
        if (_owners.IsEmpty || !_owners.TryRemove(buffer, out var peer)) return;
        Interlocked.Add(ref _total, -buffer.Length);
        var left = _byPeer.AddOrUpdate(peer, 0, (_, bytes) => bytes - buffer.Length);
        // A peer with nothing queued is forgotten (routing ids are per connection, so they do not come back).
        if (left <= 0) _byPeer.TryRemove(KeyValuePair.Create(peer, left));
    }

    public void Dispose()
    {
    }
}
