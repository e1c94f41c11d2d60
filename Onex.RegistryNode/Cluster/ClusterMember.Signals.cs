using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using Onex.Protocol;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// What a caller can await instead of asking again and again: the view becoming current, the view catching up with
/// the bucket, and this host's committed changes reaching the bucket.
/// </summary>
internal sealed partial class ClusterMember
{
    private readonly Lock _signals = new();
    private TaskCompletionSource _current = NewSignal();
    private readonly List<(ulong Revision, TaskCompletionSource Done)> _viewBarriers = [];
    private List<TaskCompletionSource> _pendingFlushes = [];
    private volatile bool _mirrorOpen;
    // The highest revision the watch handed the registry thread (any session).
    private long _watchedRevision;

    /// <summary>A barrier in the mirror queue: completes once everything queued before it is written.</summary>
    internal sealed record Flush(TaskCompletionSource Done) : MirrorItem;

    /// <summary>Completes when the cluster view is current (connected, and the bucket loaded into the view); at once when it is.</summary>
    public Task WhenCurrentAsync(CancellationToken cancellationToken = default)
    {
        lock (_signals) return _current.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Completes when this registry's merged view holds every write the bucket acknowledged before the call (another
    /// host's registration that reached the bucket is then in introspection, snapshots and the change stream). A
    /// barrier at the bucket's last revision (read from the stream's state; nothing is written): it completes once the
    /// watch has delivered that revision or a later one and the registry thread applied what came before. Waits for the
    /// view to be current first.
    /// </summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            await WhenCurrentAsync(cancellationToken).ConfigureAwait(false);
            if (Volatile.Read(ref _store) is not { } store) continue;
            ulong revision;
            try
            {
                revision = (await store.GetStatusAsync(cancellationToken).ConfigureAwait(false)).Info.State.LastSeq;
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                // The session is failing over: wait for the next one.
                await Task.Delay(TimeSpan.FromMilliseconds(50), _time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            var done = NewSignal();
            lock (_signals) _viewBarriers.Add((revision, done));
            // Already delivered (nothing written since): completes behind what the watch handed the registry thread so far.
            NoteWatched((ulong)Interlocked.Read(ref _watchedRevision));
            await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }
    }

    /// <summary>
    /// Completes when every change this host committed before the call is written into the bucket (the next session's
    /// re-publication covers it when no session runs now). Thread-safe.
    /// </summary>
    public Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = NewSignal();
        // On the registry thread: after every commit made before this call, so behind their mirror items.
        _post(_ =>
        {
            if (!_mirrorOpen || !_mirror.Writer.TryWrite(new Flush(done)))
            {
                lock (_signals) _pendingFlushes.Add(done);
            }
        });
        return done.Task.WaitAsync(cancellationToken);
    }

    private byte[] HeartbeatValue() => RegistryCodec.SerializeBody(new ClusterHeartbeat
    {
        Host = HostName, Epoch = _epoch(), IntervalMs = (long)_options.HeartbeatInterval.TotalMilliseconds, SentAt = NowMs(),
    });

    /// <summary>The view turned current (registry thread, load done) or stopped being so (any thread).</summary>
    private void SignalCurrent(bool current)
    {
        lock (_signals)
        {
            if (current) _current.TrySetResult();
            else if (_current.Task.IsCompleted) _current = NewSignal();
        }
    }

    /// <summary>The watch handed the registry thread everything up to <paramref name="revision"/>: barriers at or below it complete once that ran.</summary>
    private void NoteWatched(ulong revision)
    {
        if (revision > (ulong)Interlocked.Read(ref _watchedRevision)) Interlocked.Exchange(ref _watchedRevision, (long)revision);
        lock (_signals)
            if (!_viewBarriers.Any(b => b.Revision <= revision)) return;
        Inbox.Post(_ =>
        {
            lock (_signals)
            {
                foreach (var barrier in _viewBarriers.Where(b => b.Revision <= revision)) barrier.Done.TrySetResult();
                _viewBarriers.RemoveAll(b => b.Revision <= revision);
            }
        });
    }

    /// <summary>Flushes waiting for a re-publication: handed to the one just queued (registry thread).</summary>
    private List<TaskCompletionSource> TakePendingFlushes()
    {
        lock (_signals)
        {
            var taken = _pendingFlushes;
            _pendingFlushes = [];
            return taken;
        }
    }

    /// <summary>Flushes dropped with an ended session's queue wait for the next re-publication.</summary>
    private void KeepFlushes(MirrorItem item)
    {
        var kept = item switch
        {
            Flush flush => [flush.Done],
            Resync resync => resync.Flushes,
            _ => null,
        };
        if (kept is { Count: > 0 })
            lock (_signals) _pendingFlushes.AddRange(kept);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
