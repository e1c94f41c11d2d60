using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// What the bucket's watch hands the registry thread (remote entries, deletions, health marks, the end of a load, view
/// barriers), applied there in order and in bounded batches: one post to the registry loop per batch, not per entry, so
/// a batch is one wake-up and one store commit, and the loop answers its requests between two batches. Every remote
/// change is still recorded one by one in the change journal (its own sequence number, in the bucket's order).
/// </summary>
/// <remarks>
/// The loop runs in one wake-up only the work queued when the wake-up began (<c>RegistryServer</c>), so the batch that
/// re-posts the rest comes after the requests that arrived meanwhile. Thread-safe producers; one consumer, the registry thread.
/// </remarks>
internal sealed partial class ClusterInbox
{
    /// <summary>The most items one batch applies: 256 small remote entries take a few milliseconds on the registry thread.</summary>
    public const int BatchSize = 256;

    private readonly ConcurrentQueue<Action<RegistryState>> _pending = new();
    private readonly Action<Action<RegistryState>> _post;
    private readonly ILogger _logger;
    private readonly Action<RegistryState> _drain;
    // 1 while a batch is posted or running: at most one in the loop's queue, so batches never overtake each other.
    private int _scheduled;
    private long _batches;

    /// <param name="post">Queues work for the registry thread (thread-safe).</param>
    /// <param name="logger">Where a failing item is reported (the rest of its batch still runs).</param>
    public ClusterInbox(Action<Action<RegistryState>> post, ILogger logger)
    {
        _post = post;
        _logger = logger;
        _drain = Drain;
    }

    /// <summary>Batches applied so far (each one wake-up of the registry loop). Thread-safe.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Items waiting for the registry thread. Thread-safe.</summary>
    public int Pending => _pending.Count;

    /// <summary>Queues <paramref name="work"/> for the registry thread, after everything queued before it. Thread-safe.</summary>
    public void Post(Action<RegistryState> work)
    {
        _pending.Enqueue(work);
        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0) _post(_drain);
    }

    /// <summary>
    /// Registry thread: applies up to <see cref="BatchSize"/> items, or fewer when they take the loop's work budget per
    /// wake-up (a loaded machine), then posts itself again for the rest.
    /// </summary>
    private void Drain(RegistryState state)
    {
        var began = TimeProvider.System.GetTimestamp(); // real time, as the loop's own budget: a fake clock does not slow the thread
        for (var i = 0; i < BatchSize && (i == 0 || TimeProvider.System.GetElapsedTime(began) < RegistryServer.WakeUpWorkBudget) && _pending.TryDequeue(out var work); i++)
        {
            try
            {
                work(state);
            }
            catch (Exception ex)
            {
                LogItemFailed(ex);
            }
        }
        Interlocked.Increment(ref _batches);
        if (!_pending.IsEmpty)
        {
            _post(_drain); // still scheduled: the next batch, in a later wake-up
            return;
        }
        Volatile.Write(ref _scheduled, 0);
        // An item queued between the check above and the reset saw a batch scheduled and did not post one.
        if (!_pending.IsEmpty && Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0) _post(_drain);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Cluster: applying a change of the bucket on the registry thread failed")]
    private partial void LogItemFailed(Exception exception);
}
