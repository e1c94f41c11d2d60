namespace Onex.RegistryNode.Server;

/// <summary>
/// Bytes kept for a while by the registry thread, appended into large chunks that are reused once everything in them
/// is given back, so a kept item is no object of its own: the replies the <see cref="ReplyCache"/> remembers and the
/// changes the watch history keeps. Owned by the registry thread.
/// </summary>
/// <remarks>
/// <para>
/// Both keep every item for a while (a reply for seconds to minutes, a change until 4,096 newer ones came) and then
/// drop it: exactly the lifetime a generational collector handles worst. As objects, each was copied out of the young
/// generation, promoted, and collected again in a full collection: under lease churn the node ran two full
/// collections a second and spent an eighth of its time paused. Here an item costs a copy into a chunk, and the
/// chunks themselves live as long as their owner.
/// </para>
/// <para>
/// Items given back out of order (a client's share of the reply cache, a replaced id) can leave a chunk held by a few
/// live ones. When the chunks hold more than twice the live bytes (and more than <see cref="KeptFreeChunks"/> chunks'
/// worth), <see cref="NeedsCompaction"/> asks the owner to move every live item into fresh chunks (<see cref="Compact"/>):
/// the memory held stays within twice what is kept, and a move costs one copy of the live bytes, after which it takes
/// as many bytes given back again. An owner that gives back in order (the history) never needs it. An item larger
/// than <see cref="OwnArrayAbove"/> gets an array of its own.
/// </para>
/// </remarks>
internal sealed class ChunkedBytes
{
    /// <summary>Size of a chunk.</summary>
    public const int ChunkBytes = 256 * 1024;

    /// <summary>Entries larger than this get an array of their own rather than a place in a chunk.</summary>
    public const int OwnArrayAbove = ChunkBytes / 8;

    /// <summary>Emptied chunks kept for reuse; further ones are let go.</summary>
    public const int KeptFreeChunks = 2;

    /// <summary>Where one entry's bytes are: a chunk and an offset, or an array of its own (<see cref="Chunk"/> is -1).</summary>
    public readonly record struct Place(int Chunk, int Offset, int Length, byte[]? Own);

    private readonly List<byte[]?> _chunks = [];
    private readonly List<int> _live = [];
    private readonly Stack<byte[]> _free = new();
    private int _current = -1;
    private int _used;

    /// <summary>Bytes of live entries held in chunks (not counting arrays of their own).</summary>
    public long LiveBytes { get; private set; }

    /// <summary>Chunks allocated now (in use or not yet let go).</summary>
    public int ChunkCount { get; private set; }

    /// <summary>True when the chunks hold more than twice the live bytes: the owner should move its entries (<see cref="Compact"/>).</summary>
    public bool NeedsCompaction =>
        ChunkCount > KeptFreeChunks + 2 && (long)ChunkCount * ChunkBytes > 2 * LiveBytes + (long)(KeptFreeChunks + 1) * ChunkBytes;

    /// <summary>Reserves <paramref name="length"/> bytes; write them through <see cref="Span"/>.</summary>
    public Place Allocate(int length)
    {
        if (length == 0) return new Place(-1, 0, 0, []);
        if (length > OwnArrayAbove) return new Place(-1, 0, length, new byte[length]);
        if (_current < 0 || _used + length > ChunkBytes)
        {
            if (_current >= 0) ReleaseIfEmpty(_current, wasCurrent: true);
            _current = NewChunk();
            _used = 0;
        }
        var place = new Place(_current, _used, length, null);
        _used += length;
        _live[_current] += length;
        LiveBytes += length;
        return place;
    }

    /// <summary>The bytes at <paramref name="place"/>.</summary>
    public Span<byte> Span(Place place) =>
        place.Own is { } own ? own : _chunks[place.Chunk].AsSpan(place.Offset, place.Length);

    /// <summary>Gives <paramref name="place"/>'s bytes back; a chunk left with nothing live is reused.</summary>
    public void Release(Place place)
    {
        if (place.Own is not null) return;
        _live[place.Chunk] -= place.Length;
        LiveBytes -= place.Length;
        if (place.Chunk != _current) ReleaseIfEmpty(place.Chunk, wasCurrent: false);
        else if (_live[_current] == 0) _used = 0; // nothing left in it: write from its start again
    }

    /// <summary>
    /// Moves every live entry into fresh chunks: <paramref name="forEach"/> is called with a function that takes an
    /// entry's old place and returns its new one, and must call it once for each live entry.
    /// </summary>
    public void Compact(Action<Func<Place, Place>> forEach)
    {
        var old = _chunks.ToArray();
        _chunks.Clear();
        _live.Clear();
        _free.Clear();
        _current = -1;
        _used = 0;
        LiveBytes = 0;
        ChunkCount = 0;
        forEach(from =>
        {
            if (from.Own is not null) return from;
            var to = Allocate(from.Length);
            old[from.Chunk].AsSpan(from.Offset, from.Length).CopyTo(Span(to));
            return to;
        });
    }

    private int NewChunk()
    {
        var chunk = _free.TryPop(out var reused) ? reused : new byte[ChunkBytes];
        if (reused is null) ChunkCount++;
        var index = _chunks.IndexOf(null);
        if (index < 0)
        {
            _chunks.Add(chunk);
            _live.Add(0);
            return _chunks.Count - 1;
        }
        _chunks[index] = chunk;
        _live[index] = 0;
        return index;
    }

    private void ReleaseIfEmpty(int index, bool wasCurrent)
    {
        if (_live[index] != 0) return;
        var chunk = _chunks[index]!;
        _chunks[index] = null;
        if (wasCurrent) _current = -1;
        if (_free.Count < KeptFreeChunks) _free.Push(chunk);
        else ChunkCount--;
    }
}
