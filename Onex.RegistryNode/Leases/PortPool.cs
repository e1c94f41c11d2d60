namespace Onex.RegistryNode.Leases;

/// <summary>
/// The ports the registry may lease and where each one is: free (in a FIFO queue), leased, or resting in
/// quarantine until a given time. Quarantined ports rejoin at the back of the queue, so a port that was
/// just given back is reused last. Owned by the registry thread and not thread-safe, except for
/// <see cref="TryBeginCheck"/> and <see cref="EndCheck"/>, which <see cref="PortVerifier"/> calls from its own thread.
/// </summary>
/// <remarks>
/// Every port carries a claim that keeps the registry thread and the verifier from binding the same port at the
/// same time, and keeps the verifier off ports that are not free: a free port is unclaimed, or claimed by the
/// verifier while it checks it; a leased or quarantined port is claimed by the registry thread. A port also
/// carries a generation, new each time it joins the free queue, so a check made during an earlier stay in the
/// queue is never taken for a check of this one. The queue is a linked list threaded through arrays indexed by
/// port, so moving ports around allocates nothing.
/// </remarks>
internal sealed class PortPool
{
    private enum PortState : byte { Outside, Free, Leased, Quarantined }

    private const int Unclaimed = 0;
    private const int ClaimedByVerifier = 1;
    private const int ClaimedByRegistry = 2;
    private const int None = 0; // port 0 is never in the pool, so it ends the list

    private readonly PortState[] _state = new PortState[65536];
    private readonly int[] _next = new int[65536];
    private readonly int[] _previous = new int[65536];
    private readonly int[] _claims = new int[65536];
    private readonly int[] _generations = new int[65536];
    private int _head = None;
    private int _tail = None;
    // Ordered by release time, then by arrival, so equal release times keep FIFO order.
    private readonly PriorityQueue<int, (long Until, long Order)> _quarantine = new();
    private readonly (long Until, long Order)[] _quarantinedUntil = new (long, long)[65536];
    private long _quarantineOrder;
    // Each free port's place in the queue as a number, so a store can rebuild the queue's order: joining the back
    // takes the next higher number, going back to the front the next lower one.
    private readonly long[] _order = new long[65536];
    private long _frontOrder;
    private long _backOrder;
    private Action<int>? _changed;

    public PortPool(IEnumerable<int> ports)
    {
        Array.Fill(_claims, ClaimedByRegistry);
        foreach (var port in ports)
        {
            if (port is < 1 or > 65535 || _state[port] != PortState.Outside) continue;
            Enqueue(port, atFront: false);
            Size++;
        }
    }

    /// <summary>Called with a port whenever its place changes (free, leased, quarantined, or its order in the queue).</summary>
    public void OnChanged(Action<int> changed) => _changed = changed;

    /// <summary>How many ports the pool manages.</summary>
    public int Size { get; }

    /// <summary>Ports ready to lease.</summary>
    public int FreeCount { get; private set; }

    /// <summary>Ports resting in quarantine.</summary>
    public int QuarantinedCount => _quarantine.Count;

    /// <summary>Ports currently leased.</summary>
    public int LeasedCount => Size - FreeCount - QuarantinedCount;

    /// <summary>True when <paramref name="port"/> belongs to the pool.</summary>
    public bool Contains(int port) => port is >= 1 and <= 65535 && _state[port] != PortState.Outside;

    /// <summary>True when <paramref name="port"/> is in the free queue.</summary>
    public bool IsFree(int port) => Contains(port) && _state[port] == PortState.Free;

    /// <summary>True when <paramref name="port"/> is held by a lease.</summary>
    public bool IsLeased(int port) => Contains(port) && _state[port] == PortState.Leased;

    /// <summary>The generation of a free port: new each time it joins the free queue.</summary>
    public int GenerationOf(int port) => _generations[port];

    /// <summary>Takes <paramref name="port"/> whether it is free or resting in quarantine (a reclaim after a registry restart).</summary>
    public bool TryReclaim(int port)
    {
        if (!Contains(port)) return false;
        switch (_state[port])
        {
            case PortState.Free:
                Take(port);
                return true;
            case PortState.Quarantined:
                _quarantine.Remove(port, out _, out _);
                _state[port] = PortState.Leased;
                _changed?.Invoke(port);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Free ports in queue order (front first).</summary>
    public IEnumerable<int> FreeInOrder
    {
        get
        {
            for (var port = _head; port != None; port = _next[port]) yield return port;
        }
    }

    /// <summary>Copies the first free ports, front first, into <paramref name="destination"/>; returns how many.</summary>
    public int CopyHead(Span<int> destination)
    {
        var count = 0;
        for (var port = _head; port != None && count < destination.Length; port = _next[port]) destination[count++] = port;
        return count;
    }

    /// <summary>Moves every port whose quarantine ended at or before <paramref name="nowMs"/> to the back of the free queue.</summary>
    public void ReleaseQuarantined(long nowMs)
    {
        while (_quarantine.TryPeek(out var port, out var key) && key.Until <= nowMs)
        {
            _quarantine.Dequeue();
            // Not reported as a change: the end of a rest follows from its stored time, so a read that releases
            // ports (statistics) stores nothing, and a restart releases the port again when its time is past.
            Link(port, atFront: false);
            _order[port] = ++_backOrder;
        }
    }

    /// <summary>
    /// Takes the first port of the free queue that the verifier is not checking at this moment (it checks one port
    /// at a time, so at most one is passed over, and it stays where it is).
    /// </summary>
    public bool TryTakeNext(out int port)
    {
        for (port = _head; port != None; port = _next[port])
        {
            if (Interlocked.CompareExchange(ref _claims[port], ClaimedByRegistry, Unclaimed) != Unclaimed) continue;
            Remove(port);
            _state[port] = PortState.Leased;
            _changed?.Invoke(port);
            return true;
        }
        port = 0;
        return false;
    }

    /// <summary>Takes <paramref name="port"/> out of the free queue, if it is there.</summary>
    public bool TryTake(int port)
    {
        if (!IsFree(port)) return false;
        Take(port);
        return true;
    }

    /// <summary>Puts ports taken by a request that could not be completed back at the front, in their old order.</summary>
    public void Untake(IReadOnlyList<int> ports)
    {
        for (var i = ports.Count - 1; i >= 0; i--)
        {
            var port = ports[i];
            if (_state[port] != PortState.Leased) continue;
            Enqueue(port, atFront: true);
        }
    }

    /// <summary>Sends a taken (leased) or free port to rest until <paramref name="untilMs"/>.</summary>
    public void Quarantine(int port, long untilMs)
    {
        if (!Contains(port) || _state[port] == PortState.Quarantined) return;
        if (_state[port] == PortState.Free) Take(port);
        _state[port] = PortState.Quarantined;
        _quarantinedUntil[port] = (untilMs, _quarantineOrder++);
        _quarantine.Enqueue(port, _quarantinedUntil[port]);
        _changed?.Invoke(port);
    }

    /// <summary>What a store keeps of a port: [state, order in the free queue, quarantined until, quarantine order].</summary>
    public long[] Describe(int port)
    {
        var (until, order) = _quarantinedUntil[port];
        return [(long)_state[port], _order[port], until, order];
    }

    /// <summary><see cref="Describe"/> without an array (the store writes it on every change of the port).</summary>
    public (long State, long Order, long QuarantinedUntil, long QuarantineOrder) Place(int port)
    {
        var (until, order) = _quarantinedUntil[port];
        return ((long)_state[port], _order[port], until, order);
    }

    /// <summary>The queue counters a store keeps: [front order, back order, quarantine order].</summary>
    public long[] Counters => [_frontOrder, _backOrder, _quarantineOrder];

    /// <summary>
    /// Puts stored ports back where they were: leased, resting until their time, or free in their old queue order.
    /// Ports not described keep their place; described ports outside the pool are ignored. Called once, before use.
    /// </summary>
    public void Restore(IEnumerable<(int Port, long[] Place)> ports, long[]? counters)
    {
        foreach (var (port, place) in ports)
        {
            if (!Contains(port)) continue;
            if (_state[port] == PortState.Free) Remove(port);
            switch ((PortState)place[0])
            {
                case PortState.Leased:
                    _state[port] = PortState.Leased;
                    _claims[port] = ClaimedByRegistry;
                    break;
                case PortState.Quarantined:
                    _state[port] = PortState.Quarantined;
                    _claims[port] = ClaimedByRegistry;
                    _quarantinedUntil[port] = (place[2], place[3]);
                    _quarantine.Enqueue(port, _quarantinedUntil[port]);
                    break;
                default:
                    _state[port] = PortState.Free;
                    _order[port] = place[1];
                    break;
            }
        }
        if (counters is { Length: 3 })
        {
            _frontOrder = Math.Min(_frontOrder, counters[0]);
            _backOrder = Math.Max(_backOrder, counters[1]);
            _quarantineOrder = Math.Max(_quarantineOrder, counters[2]);
        }
        // Rebuild the free queue in order: restored free ports mix with the rest by their order numbers.
        var free = new List<int>();
        for (var port = 1; port <= 65535; port++)
            if (_state[port] == PortState.Free) free.Add(port);
        free.Sort((a, b) => _order[a].CompareTo(_order[b]));
        _head = _tail = None;
        FreeCount = 0;
        foreach (var port in free) Link(port, atFront: false);
    }

    /// <summary>
    /// Verifier thread: claims a free port for a check, if it is still in the free queue in the generation the check
    /// was asked for. False means the port was taken (or left and came back) since: nothing to check.
    /// </summary>
    public bool TryBeginCheck(int port, int generation)
    {
        if (port is < 1 or > 65535) return false;
        if (Interlocked.CompareExchange(ref _claims[port], ClaimedByVerifier, Unclaimed) != Unclaimed) return false;
        if (Volatile.Read(ref _generations[port]) == generation) return true;
        Volatile.Write(ref _claims[port], Unclaimed);
        return false;
    }

    /// <summary>Verifier thread: gives back the claim of <see cref="TryBeginCheck"/> once the check is done.</summary>
    public void EndCheck(int port) => Volatile.Write(ref _claims[port], Unclaimed);

    private void Take(int port)
    {
        // The verifier may be checking this very port; its check takes microseconds, so wait rather than bind
        // the port from two threads at once (either bind could then fail and call a free port busy).
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _claims[port], ClaimedByRegistry, Unclaimed) != Unclaimed) spin.SpinOnce();
        Remove(port);
        _state[port] = PortState.Leased;
        _changed?.Invoke(port);
    }

    private void Enqueue(int port, bool atFront)
    {
        Link(port, atFront);
        _order[port] = atFront ? --_frontOrder : ++_backOrder;
        _changed?.Invoke(port);
    }

    private void Link(int port, bool atFront)
    {
        _state[port] = PortState.Free;
        if (atFront)
        {
            _previous[port] = None;
            _next[port] = _head;
            if (_head != None) _previous[_head] = port;
            else _tail = port;
            _head = port;
        }
        else
        {
            _next[port] = None;
            _previous[port] = _tail;
            if (_tail != None) _next[_tail] = port;
            else _head = port;
            _tail = port;
        }
        FreeCount++;
        // A new generation, published before the claim is released, so a stale check request cannot pass.
        Volatile.Write(ref _generations[port], _generations[port] + 1);
        Volatile.Write(ref _claims[port], Unclaimed);
    }

    private void Remove(int port)
    {
        var previous = _previous[port];
        var next = _next[port];
        if (previous != None) _next[previous] = next;
        else _head = next;
        if (next != None) _previous[next] = previous;
        else _tail = previous;
        _next[port] = _previous[port] = None;
        FreeCount--;
    }
}
