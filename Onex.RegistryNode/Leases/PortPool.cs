namespace Onex.RegistryNode.Leases;

/// <summary>
/// The ports the registry may lease and where each one is: free (in a FIFO queue), leased, or resting in
/// quarantine until a given time. Quarantined ports rejoin at the back of the queue, so a port that was
/// just given back is reused last. Owned by the registry thread; not thread-safe.
/// </summary>
internal sealed class PortPool
{
    private enum PortState : byte { Outside, Free, Leased, Quarantined }

    private readonly PortState[] _state = new PortState[65536];
    private readonly LinkedListNode<int>?[] _queueNodes = new LinkedListNode<int>?[65536];
    private readonly LinkedList<int> _free = new();
    // Ordered by release time, then by arrival, so equal release times keep FIFO order.
    private readonly PriorityQueue<int, (long Until, long Order)> _quarantine = new();
    private long _quarantineOrder;

    public PortPool(IEnumerable<int> ports)
    {
        foreach (var port in ports)
        {
            if (port is < 1 or > 65535 || _state[port] != PortState.Outside) continue;
            _state[port] = PortState.Free;
            _queueNodes[port] = _free.AddLast(port);
            Size++;
        }
    }

    /// <summary>How many ports the pool manages.</summary>
    public int Size { get; }

    /// <summary>Ports ready to lease.</summary>
    public int FreeCount => _free.Count;

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
                return true;
            default:
                return false;
        }
    }

    /// <summary>Free ports in queue order (front first).</summary>
    public IEnumerable<int> FreeInOrder => _free;

    /// <summary>Moves every port whose quarantine ended at or before <paramref name="nowMs"/> to the back of the free queue.</summary>
    public void ReleaseQuarantined(long nowMs)
    {
        while (_quarantine.TryPeek(out var port, out var key) && key.Until <= nowMs)
        {
            _quarantine.Dequeue();
            _state[port] = PortState.Free;
            _queueNodes[port] = _free.AddLast(port);
        }
    }

    /// <summary>Takes the port at the front of the free queue.</summary>
    public bool TryTakeNext(out int port)
    {
        var first = _free.First;
        if (first is null)
        {
            port = 0;
            return false;
        }
        port = first.Value;
        Take(port);
        return true;
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
            _state[port] = PortState.Free;
            _queueNodes[port] = _free.AddFirst(port);
        }
    }

    /// <summary>Sends a taken (leased) or free port to rest until <paramref name="untilMs"/>.</summary>
    public void Quarantine(int port, long untilMs)
    {
        if (!Contains(port) || _state[port] == PortState.Quarantined) return;
        if (_state[port] == PortState.Free) RemoveFromQueue(port);
        _state[port] = PortState.Quarantined;
        _quarantine.Enqueue(port, (untilMs, _quarantineOrder++));
    }

    private void Take(int port)
    {
        RemoveFromQueue(port);
        _state[port] = PortState.Leased;
    }

    private void RemoveFromQueue(int port)
    {
        _free.Remove(_queueNodes[port]!);
        _queueNodes[port] = null;
    }
}
