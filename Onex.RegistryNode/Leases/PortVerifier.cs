using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Onex.Protocol;

namespace Onex.RegistryNode.Leases;

/// <summary>
/// Runs free checks off the registry thread. The registry thread asks for ports near the front of the free queue
/// (<see cref="Request"/>), the verifier checks each one for <c>both</c> protocols (the strongest check, good for
/// any request) and hands back when each check began and what it found (<see cref="TryGetResult"/>). Both hand-overs
/// are lock-free queues; the verifier touches no lease state. It only binds a port after claiming it from the pool
/// (<see cref="PortPool.TryBeginCheck"/>), which fails once the registry thread has taken the port: so it never
/// binds a port that is leased, resting in quarantine, or being checked by the registry thread.
/// </summary>
/// <remarks>
/// <para>
/// Where the kernel can list its sockets (<see cref="SocketTable"/>), a batch of requests may instead be answered from
/// one reading of the socket tables: no port is bound, so no claim is needed, and each answer is stamped with when the
/// reading began. The reading costs the same for one port as for a thousand, a bind check the same for each port, so
/// the verifier keeps a running measure of both and reads the tables only when that is cheaper for the batch at hand
/// (under load, when batches are hundreds of ports); an idle registry's few checks stay binds. A reading that fails
/// falls back to binds for that batch; the kernel refusing, or three failed readings in a row, turn readings off.
/// </para>
/// <para>
/// The checks run on a thread of their own that sleeps without spinning when there is nothing to check: on the
/// thread pool, each wake-up for a batch of checks was followed by the pool's idle spin (<c>sched_yield</c> in a loop),
/// which under load cost about as much CPU as the checks themselves. A wake-up checks everything asked for by then.
/// </para>
/// </remarks>
internal sealed partial class PortVerifier : IDisposable
{
    private readonly PortPool _pool;
    private readonly IPortAvailability _availability;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<PortCheckRequest> _requests = new();
    private readonly ConcurrentQueue<PortCheckResult> _results = new();
    // Batches answered by binds, because the measures said so, before the tables are read again to measure them anew.
    private const int ReprobeEvery = 64;
    // Set when requests are waiting; spin count 0: the thread blocks at once instead of spinning for the next batch.
    private readonly ManualResetEventSlim _wake = new(initialState: false, spinCount: 0);
    private readonly Thread? _worker;
    private volatile bool _stopping;
    private readonly bool _alwaysTables;
    private Func<ISocketTable?>? _openTables;
    private volatile ISocketTable? _table;
    private readonly List<PortCheckRequest> _batch = [];
    private readonly bool[] _used = new bool[65536];
    private long _completed;
    private long _checked;
    private long _scans;
    private long _fromTables;
    // Running measures (TimeProvider.System ticks): one bind check of a port, and one reading of the socket tables.
    private double _bindTicks;
    private double _scanTicks;
    private int _scanFailures;
    private int _batchesSinceScan;

    /// <param name="pool">The pool whose claims keep the verifier off ports that are not free.</param>
    /// <param name="availability">The free check.</param>
    /// <param name="time">Stamps each check with when it began.</param>
    /// <param name="logger">Where a check that breaks (rather than finding the port in use) is reported.</param>
    /// <param name="background">
    /// True: a background thread checks requests as they come. False: requests wait for <see cref="RunPending"/> on the
    /// caller's thread (tests that need to decide when checks happen).
    /// </param>
    /// <param name="openTables">
    /// Opens the reader of the kernel's socket tables that answers large batches (null from it, or no function: every
    /// check binds). Called on the verifier's thread before its first batch, off the registry's start.
    /// </param>
    /// <param name="alwaysTables">Tests: every batch is read from the tables when they can be read, whatever the measures say.</param>
    public PortVerifier(
        PortPool pool, IPortAvailability availability, TimeProvider time, ILogger logger, bool background, Func<ISocketTable?>? openTables = null,
        bool alwaysTables = false)
    {
        _alwaysTables = alwaysTables;
        _pool = pool;
        _availability = availability;
        _time = time;
        _logger = logger;
        _openTables = openTables;
        if (background)
        {
            _worker = new Thread(Run) { IsBackground = true, Name = "onex-port-check" };
            _worker.Start();
        }
    }

    /// <summary>Requests answered so far, including those whose port was taken before the check could start.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Requests answered with an actual check (the ports bound).</summary>
    public long Checked => Interlocked.Read(ref _checked);

    /// <summary>Batches answered from one reading of the socket tables.</summary>
    public long Scans => Interlocked.Read(ref _scans);

    /// <summary>Requests answered from a reading of the socket tables (the rest of <see cref="Checked"/> bound their port).</summary>
    public long FromTables => Interlocked.Read(ref _fromTables);

    /// <summary>Checks asked for so far (read on the registry thread).</summary>
    public long Requested { get; private set; }

    /// <summary>
    /// Registry thread: asks for <paramref name="port"/>, free in generation <paramref name="generation"/>, to be
    /// checked once <see cref="Wake"/> is called.
    /// </summary>
    public void Request(int port, int generation)
    {
        if (_stopping) return;
        _requests.Enqueue(new PortCheckRequest(port, generation));
        Requested++;
    }

    /// <summary>
    /// Registry thread: lets the background thread check what was asked for. Called once per batch of requests, so the
    /// thread takes the whole batch in (one reading of the socket tables) instead of waking at the first request and
    /// answering the first few of a batch still being asked for with a bind each.
    /// </summary>
    public void Wake()
    {
        if (_worker is not null && !_requests.IsEmpty) _wake.Set();
    }

    /// <summary>Registry thread: the next finished check, in the order they were asked for.</summary>
    public bool TryGetResult(out PortCheckResult result) => _results.TryDequeue(out result);

    /// <summary>Runs the waiting requests on the calling thread (for a verifier made with <c>background: false</c>); returns how many.</summary>
    public int RunPending()
    {
        var count = 0;
        while (_requests.TryDequeue(out var request))
        {
            _batch.Add(request);
            count++;
        }
        CheckBatch();
        return count;
    }

    /// <summary>Stops the background thread after the check in progress, if any.</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_worker is null) return;
        _wake.Set();
        // A check ends within microseconds; the bound only matters if the machine stalls.
        if (_worker.Join(TimeSpan.FromSeconds(5)))
        {
            _wake.Dispose();
            TablesOff();
        }
    }

    private void Run()
    {
        while (!_stopping)
        {
            // Reset before looking, so a request queued after the look sets the event again and the wait returns.
            _wake.Reset();
            if (_requests.IsEmpty && !_stopping) _wake.Wait();
            while (!_stopping && _requests.TryDequeue(out var request)) _batch.Add(request);
            if (!_stopping) CheckBatch();
        }
    }

    /// <summary>Answers the requests taken in: from one reading of the socket tables when that is cheaper, else one bind check each.</summary>
    private void CheckBatch()
    {
        if (_batch.Count == 0) return;
        if (_openTables is { } open)
        {
            _openTables = null;
            _table = open();
            LogFreeCheckWay(_table is not null);
        }
        // A reading that once took long (the thread preempted on a loaded machine) would otherwise never be measured
        // again: every ReprobeEvery-th batch reads the tables whatever the measure says.
        var scan = _table is not null && (_alwaysTables || _batch.Count * _bindTicks >= _scanTicks || ++_batchesSinceScan >= ReprobeEvery);
        if (!scan || !TryScan())
        {
            foreach (var request in _batch) Check(request);
        }
        _batch.Clear();
    }

    private bool TryScan()
    {
        int first = 65535, last = 1;
        foreach (var request in _batch)
        {
            first = Math.Min(first, request.Port);
            last = Math.Max(last, request.Port);
        }
        if (first > last) return false;
        var began = _time.GetTimestamp();
        var started = TimeProvider.System.GetTimestamp(); // the cost in real time, whatever clock stamps the answers
        bool read;
        try
        {
            read = _table!.TryFindUsed(first, last, _used);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            LogScanFailed(ex);
            TablesOff(); // the kernel refused: binds from now on
            return false;
        }
        if (!read)
        {
            // An answer that could not be trusted whole (an error message, a dump the kernel marked interrupted): this
            // batch binds, and a third such reading in a row turns readings off.
            if (++_scanFailures >= 3)
            {
                LogScanFailed(null);
                TablesOff();
            }
            return false;
        }
        _scanFailures = 0;
        _batchesSinceScan = 0;
        // One outlier moves the measure at most to 4 times what it was.
        var took = (double)(TimeProvider.System.GetTimestamp() - started);
        _scanTicks = _scanTicks == 0 ? took : (_scanTicks * 7 + Math.Min(took, 4 * _scanTicks)) / 8;
        Interlocked.Increment(ref _scans);
        // No claim: nothing is bound. A port taken (or gone and back) since it was asked about is told apart by the
        // registry thread, which uses an answer only while the port has stayed in the free queue in the same generation.
        foreach (var request in _batch)
        {
            var outcome = _used[request.Port - first] ? PortCheckOutcome.InUse : PortCheckOutcome.Free;
            Interlocked.Increment(ref _checked);
            Interlocked.Increment(ref _fromTables);
            _results.Enqueue(new PortCheckResult(request.Port, request.Generation, began, outcome));
            Interlocked.Increment(ref _completed);
        }
        return true;
    }

    private void TablesOff()
    {
        _table?.Dispose();
        _table = null;
    }

    private void Check(PortCheckRequest request)
    {
        var outcome = PortCheckOutcome.Skipped;
        var began = _time.GetTimestamp();
        if (_pool.TryBeginCheck(request.Port, request.Generation))
        {
            try
            {
                Interlocked.Increment(ref _checked);
                var started = TimeProvider.System.GetTimestamp();
                outcome = _availability.IsFree(request.Port, PortProtocols.Both) ? PortCheckOutcome.Free : PortCheckOutcome.InUse;
                var took = TimeProvider.System.GetTimestamp() - started;
                _bindTicks = _bindTicks == 0 ? took : (_bindTicks * 31 + took) / 32;
            }
            catch (Exception ex)
            {
                // The check itself broke (not "in use"): nothing learned; a grant of this port checks it inline.
                outcome = PortCheckOutcome.Skipped;
                LogCheckFailed(ex, request.Port);
            }
            finally
            {
                _pool.EndCheck(request.Port);
            }
        }
        _results.Enqueue(new PortCheckResult(request.Port, request.Generation, began, outcome));
        Interlocked.Increment(ref _completed);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Free checks read the kernel's socket tables for large batches: {ReadsTables} (false: this kernel does not list bound-only TCP sockets in sock_diag, before Linux 6.10, so each port is bound)")]
    private partial void LogFreeCheckWay(bool readsTables);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the kernel's socket tables failed; the free checks bind each port from now on")]
    private partial void LogScanFailed(Exception? exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Background free check of port {Port} failed; a grant of it will check it inline")]
    private partial void LogCheckFailed(Exception exception, int port);
}

/// <summary>A port to check, free in the given generation (see <see cref="PortPool.GenerationOf"/>).</summary>
internal readonly record struct PortCheckRequest(int Port, int Generation);

/// <summary>What a check found: <see cref="PortCheckOutcome.Free"/> means free for TCP and UDP when it began (<see cref="BeganAt"/>, a <see cref="TimeProvider"/> timestamp).</summary>
internal readonly record struct PortCheckResult(int Port, int Generation, long BeganAt, PortCheckOutcome Outcome);

/// <summary>The outcome of a background check.</summary>
internal enum PortCheckOutcome
{
    /// <summary>Bound for TCP (with listen) and UDP on every address family: free.</summary>
    Free,
    /// <summary>Some bind failed: something else uses the port.</summary>
    InUse,
    /// <summary>Not checked: the port was taken, or left the free queue, before the check could start (or the check broke).</summary>
    Skipped,
}
