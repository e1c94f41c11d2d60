namespace Onex.RegistryNode.Leases;

/// <summary>
/// The registry thread's side of checking ports ahead of demand: which free ports near the front of the queue the
/// <see cref="PortVerifier"/> found free, and when. A grant takes the oldest port checked free within the freshness
/// window that has stayed in the free queue since (same generation), and checks inline only when there is none. So
/// a pre-verified grant's port was checked free at most <see cref="LeaseOptions.VerifiedPortFreshness"/> before it
/// was granted, and grants keep queue order apart from the few ports at the front not (or not recently) checked.
/// </summary>
/// <remarks>
/// Demand decides how far ahead the verifier works: after each grant it is asked to keep as many ports verified as
/// were granted in the preceding freshness window, at most <see cref="LeaseOptions.VerifiedPortBuffer"/>. An idle
/// registry therefore binds nothing in the background, and an occasional grant simply checks inline.
/// A port the verifier finds in use is handled as one failing a grant's check: it rests, then rejoins the back. The
/// verifier checks TCP and UDP, so a port in use for only one of them is skipped by requests for the other as well.
/// </remarks>
internal sealed class VerifiedPorts
{
    /// <summary>The largest <see cref="LeaseOptions.VerifiedPortBuffer"/> honoured.</summary>
    public const int MaxCapacity = 4096;

    private readonly PortPool _pool;
    private readonly PortVerifier _verifier;
    private readonly TimeProvider _time;
    private readonly Action<int> _inUse;
    private readonly long _freshness;
    private readonly int _capacity;
    // Checks found free, oldest first (the verifier answers in the order it was asked: front of the queue first).
    private readonly Queue<PortCheckResult> _fresh = new();
    // The generation each port was last asked to be checked in; a port is asked about once per stay in the queue.
    private readonly int[] _requested = new int[65536];
    // Timestamps of recent grants (at most _capacity), to size the work ahead.
    private readonly Queue<long> _recentGrants = new();
    private int _pending;

    /// <param name="pool">The pool; its generations tell whether a check still applies.</param>
    /// <param name="verifier">Does the checks.</param>
    /// <param name="options"><see cref="LeaseOptions.VerifiedPortFreshness"/> and <see cref="LeaseOptions.VerifiedPortBuffer"/>; zero turns pre-verification off.</param>
    /// <param name="time">The clock the verifier stamps its checks with.</param>
    /// <param name="inUse">Called with a free port the verifier found in use (to quarantine it).</param>
    public VerifiedPorts(PortPool pool, PortVerifier verifier, LeaseOptions options, TimeProvider time, Action<int> inUse)
    {
        _pool = pool;
        _verifier = verifier;
        _time = time;
        _inUse = inUse;
        _freshness = (long)(options.VerifiedPortFreshness.TotalSeconds * time.TimestampFrequency);
        _capacity = _freshness > 0 ? Math.Clamp(options.VerifiedPortBuffer, 0, MaxCapacity) : 0;
    }

    /// <summary>The verifier.</summary>
    public PortVerifier Verifier => _verifier;

    /// <summary>Ports granted on a background check rather than an inline one.</summary>
    public long Used { get; private set; }

    /// <summary>Checks found free and not yet used or expired (some may have been taken by other means since).</summary>
    public int FreshCount => _fresh.Count;

    /// <summary>
    /// Takes the oldest port checked free within the freshness window that has stayed free since; false when there is
    /// none (the caller checks a port inline).
    /// </summary>
    public bool TryTake(out int port)
    {
        port = 0;
        if (_capacity == 0) return false;
        var now = _time.GetTimestamp();
        Collect();
        while (_fresh.TryDequeue(out var check))
        {
            if (!StillFree(check)) continue;
            if (now - check.BeganAt > _freshness)
            {
                _requested[check.Port] = 0; // may be asked about again
                continue;
            }
            _pool.TryTake(check.Port);
            port = check.Port;
            Used++;
            return true;
        }
        return false;
    }

    /// <summary>After a grant of <paramref name="granted"/> ports: asks the verifier to work ahead as far as recent demand suggests.</summary>
    public void AfterGrant(int granted)
    {
        if (_capacity == 0) return;
        var now = _time.GetTimestamp();
        while (_recentGrants.TryPeek(out var at) && now - at > _freshness) _recentGrants.Dequeue();
        var target = Math.Min(_capacity, _recentGrants.Count);
        for (var i = 0; i < granted && _recentGrants.Count < _capacity; i++) _recentGrants.Enqueue(now);

        Collect();
        while (_fresh.TryPeek(out var oldest) && (now - oldest.BeganAt > _freshness || !StillFree(oldest)))
        {
            _fresh.Dequeue();
            if (_requested[oldest.Port] == oldest.Generation) _requested[oldest.Port] = 0;
        }
        var outstanding = _pending + _fresh.Count;
        // Ask in batches (once half the target is used up), not after every single grant: under load a batch is answered
        // by one reading of the socket tables, whose cost does not depend on the batch's size.
        if (target == 0 || outstanding > target - Math.Max(1, target / 2)) return;

        Span<int> front = stackalloc int[Math.Min(_pool.FreeCount, 2 * _capacity)];
        front = front[.._pool.CopyHead(front)];
        foreach (var port in front)
        {
            if (outstanding >= target) break;
            var generation = _pool.GenerationOf(port);
            if (_requested[port] == generation) continue;
            _requested[port] = generation;
            _verifier.Request(port, generation);
            _pending++;
            outstanding++;
        }
        _verifier.Wake();
    }

    /// <summary>Takes in what the verifier has finished.</summary>
    private void Collect()
    {
        while (_verifier.TryGetResult(out var result))
        {
            _pending--;
            switch (result.Outcome)
            {
                case PortCheckOutcome.Free:
                    _fresh.Enqueue(result);
                    break;
                case PortCheckOutcome.InUse:
                    if (StillFree(result)) _inUse(result.Port);
                    break;
                default:
                    if (_requested[result.Port] == result.Generation) _requested[result.Port] = 0;
                    break;
            }
        }
    }

    // True when the port has been in the free queue without a break since the check was asked for.
    private bool StillFree(PortCheckResult check) => _pool.IsFree(check.Port) && _pool.GenerationOf(check.Port) == check.Generation;
}
