using System.Collections.Concurrent;
using NetMQ;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Counts, per requesting peer, the bytes of large replies ZeroMQ still holds for it (queued, not yet written to its
/// connection), so a peer that never reads cannot make the registry hold more than
/// <see cref="PeerBounds.QueuedReplyBytesPerPeer"/> of them (PROTOCOL.md section 14). ZeroMQ's own high-water mark
/// counts messages, and one reply can be 64 MiB. Also counts the bytes of every frame ZeroMQ has received and not yet
/// handed over (<see cref="Received"/>), and tells its watchers when they pass <see cref="PeerBounds.ReceivedBytesTotal"/>.
/// </summary>
/// <remarks>
/// <para>
/// NetMQ copies each outgoing frame into a buffer taken from its process-wide <see cref="BufferPool"/> and returns the
/// buffer when the frame has been written out, or dropped with its connection. This pool allocates exactly like
/// NetMQ's default one and, for the buffers the registry thread marks while sending a large reply, credits the peer
/// back on return. Replies under <see cref="PeerBounds.LargeReplyBytes"/> are left to the high-water mark.
/// </para>
/// <para>
/// NetMQ's I/O threads (named <c>iothread-N</c>) decode every incoming frame into a buffer taken from this pool
/// (<c>V2Decoder</c>: <c>Msg.InitPool</c> once the frame's size is read) and the buffer comes back when the receiving
/// socket has copied the message out (<c>Msg.Close</c>), or when the connection's pipe is torn down (a message whose
/// last frame never came is closed by <c>Pipe.Rollback</c>). ZeroMQ's receive high-water mark counts finished
/// messages only, so these bytes are the one measure of what peers make the node hold while receiving, unfinished
/// messages included. Each frame is charged its buffer plus <see cref="ReceivedFrameOverhead"/> (an empty frame still
/// costs ZeroMQ a message slot and a reference counter). ZeroMQ's buffers are process-wide, so this is counted only in
/// a process that runs nothing but the node (<see cref="GuardReceived"/>, called by the node's program): embedded in
/// another process, the count would include that process's own sockets.
/// </para>
/// <para>
/// Past the bound the registry thread closes its connections, which can take it a while when it is in the middle of
/// an expensive request (a validation runs up to 500 ms of CPU). Meanwhile each further frame past the bound holds the
/// I/O thread that decodes it for up to <see cref="HoldOverCap"/> (no deadlock: the registry thread never waits for
/// the I/O thread), so what peers add in that time is a frame a second, not what loopback can carry.
/// </para>
/// </remarks>
internal sealed class QueuedReplyBytes : IBufferPool
{
    /// <summary>The one pool of the process (NetMQ's pool is process-wide).</summary>
    public static readonly QueuedReplyBytes Instance = new();

    [ThreadStatic]
    private static string? t_marking;

    /// <summary>What a received frame is charged beyond its buffer: ZeroMQ's message slot, its reference counter, the entry here.</summary>
    public const int ReceivedFrameOverhead = 128;

    /// <summary>Longest time a frame past the bound holds its I/O thread while the registry thread gets to close the connections.</summary>
    public static readonly TimeSpan HoldOverCap = TimeSpan.FromSeconds(1);

    [ThreadStatic]
    private static int t_ioThread; // 0: not looked at yet; 1: a NetMQ I/O thread; 2: another thread

    private readonly ConcurrentDictionary<byte[], string> _owners = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentDictionary<string, long> _byPeer = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<byte[], int> _received = new(ReferenceEqualityComparer.Instance);
    private readonly Lock _watchersLock = new();
    private Action[] _overReceivedCap = [];
    private long _total;
    private readonly ManualResetEventSlim _underCap = new(initialState: true);
    private long _receivedTotal;
    private int _overCapSignalled;
    private volatile bool _guarding;

    private QueuedReplyBytes()
    {
    }

    /// <summary>Makes this the pool NetMQ takes frame buffers from (idempotent).</summary>
    public static void Install() => BufferPool.SetCustomBufferPool(Instance);

    /// <summary>Bytes of large replies queued for <paramref name="peer"/>.</summary>
    public long Of(string peer) => _byPeer.GetValueOrDefault(peer);

    /// <summary>Bytes of large replies queued for all peers.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Bytes of frames ZeroMQ's I/O threads have received and not yet handed over (with their overhead).</summary>
    public long Received => Interlocked.Read(ref _receivedTotal);

    /// <summary>
    /// Calls <paramref name="overCap"/> (on a NetMQ I/O thread: it must only post work) once when <see cref="Received"/>
    /// passes <see cref="PeerBounds.ReceivedBytesTotal"/>, and again after each <see cref="Rearm"/> or
    /// <see cref="ForgetReceived"/>. Disposing the result stops the calls.
    /// </summary>
    public IDisposable WatchReceived(Action overCap)
    {
        lock (_watchersLock) _overReceivedCap = [.. _overReceivedCap, overCap];
        return new Unwatch(this, overCap);
    }

    /// <summary>
    /// Counts received frames from now on: for a process that runs nothing but the node (its program calls this before
    /// binding), since ZeroMQ's buffers are shared by every socket of the process. Idempotent.
    /// </summary>
    public void GuardReceived() => _guarding = true;

    /// <summary>Lets the next frame over the cap call the watchers again, and releases the frames held at the bound.</summary>
    public void Rearm()
    {
        Volatile.Write(ref _overCapSignalled, 0);
        _underCap.Set();
    }

    /// <summary>
    /// Stops counting the received frames counted now (their connections were just closed: ZeroMQ returns or drops
    /// their buffers, and a dropped one would otherwise stay counted, and referenced here, for good) and re-arms the
    /// watchers. Returns the bytes forgotten.
    /// </summary>
    public long ForgetReceived()
    {
        long forgotten = 0;
        foreach (var entry in _received)
        {
            if (_received.TryRemove(entry)) forgotten += entry.Value;
        }
        Interlocked.Add(ref _receivedTotal, -forgotten);
        Rearm();
        return forgotten;
    }

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
        else if (_guarding && OnIoThread())
        {
            CountReceived(buffer);
        }
        return buffer;
    }

    public void Return(byte[] buffer)
    {
        if (_guarding && _received.TryRemove(buffer, out var charge))
        {
            Interlocked.Add(ref _receivedTotal, -charge);
            return;
        }
        if (_owners.IsEmpty || !_owners.TryRemove(buffer, out var peer)) return;
        Interlocked.Add(ref _total, -buffer.Length);
        var left = _byPeer.AddOrUpdate(peer, 0, (_, bytes) => bytes - buffer.Length);
        // A peer with nothing queued is forgotten (routing ids are per connection, so they do not come back).
        if (left <= 0) _byPeer.TryRemove(KeyValuePair.Create(peer, left));
    }

    public void Dispose()
    {
    }

    private static bool OnIoThread()
    {
        var kind = t_ioThread;
        if (kind == 0)
        {
            // NetMQ names its I/O threads "iothread-N" (IOThread); every other thread takes buffers to send.
            kind = Thread.CurrentThread.Name?.StartsWith("iothread-", StringComparison.Ordinal) == true ? 1 : 2;
            t_ioThread = kind;
        }
        return kind == 1;
    }

    private void CountReceived(byte[] buffer)
    {
        // Every buffer is its own array (an empty frame too: GC.AllocateUninitializedArray makes a new one), so it keys its entry.
        var charge = buffer.Length + ReceivedFrameOverhead;
        _received[buffer] = charge;
        var total = Interlocked.Add(ref _receivedTotal, charge);
        if (total <= PeerBounds.ReceivedBytesTotal) return;
        var watchers = Volatile.Read(ref _overReceivedCap);
        if (watchers.Length == 0) return; // no registry to close connections (it stopped): nothing would release a hold
        if (Interlocked.Exchange(ref _overCapSignalled, 1) == 0)
        {
            _underCap.Reset();
            foreach (var overCap in watchers) overCap();
        }
        // Bounded, so a registry thread that never gets there (stopping) cannot stall ZeroMQ for good.
        _underCap.Wait(HoldOverCap);
    }

    private sealed class Unwatch(QueuedReplyBytes pool, Action overCap) : IDisposable
    {
        public void Dispose()
        {
            lock (pool._watchersLock) pool._overReceivedCap = [.. pool._overReceivedCap.Where(a => a != overCap)];
        }
    }
}
