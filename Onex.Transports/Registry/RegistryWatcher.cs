using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>
/// The Clone-pattern subscriber: broadcasts are already subscribed when it starts; it takes a snapshot, drops
/// changes at or below the snapshot's sequence, applies the rest strictly in order, and resyncs by snapshot on
/// a gap or a new epoch, saying so every time. Heartbeats give liveness (three silent periods: "silent") and
/// catch a missed last change (a heartbeat's sequence ahead of ours).
/// </summary>
internal sealed class RegistryWatcher
{
    private static readonly TimeSpan MaxSilentPoll = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The least the first snapshot waits for a broadcast proving the subscription live. A registry with a fast
    /// heartbeat (50 ms: three periods are 150 ms) would otherwise have its first snapshot taken before a subscription
    /// on a loaded machine takes effect, and the changes in between come as a <c>Gap</c> resync instead of changes.
    /// </summary>
    internal static readonly TimeSpan MinFirstBroadcastWait = TimeSpan.FromSeconds(1);

    private static readonly HashSet<string> KnownChangeTypes = new(StringComparer.Ordinal)
    {
        ChangeTypes.LeaseGranted, ChangeTypes.LeaseRenewed, ChangeTypes.LeaseReleased, ChangeTypes.LeaseExpired,
        ChangeTypes.LeaseConflicted, ChangeTypes.NodeRegistered, ChangeTypes.NodeUpdated, ChangeTypes.NodeUnhealthy,
        ChangeTypes.NodeHealthy, ChangeTypes.NodeRemoved, ChangeTypes.BusRegistered, ChangeTypes.BusUpdated,
        ChangeTypes.BusRemoved, ChangeTypes.ToolRegistered, ChangeTypes.ToolUpdated, ChangeTypes.ToolRemoved,
    };

    private readonly IRegistryBroadcastSource _source;
    private readonly Func<CancellationToken, ValueTask<RegistrySnapshot>> _takeSnapshot;
    private readonly string _topicPrefix;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HashSet<string> _retiredEpochs = new(StringComparer.Ordinal);
    private TimeSpan _heartbeatInterval;
    private string _epoch = "";
    private long _sequence;
    private bool _silent;

    public RegistryWatcher(
        IRegistryBroadcastSource source,
        Func<CancellationToken, ValueTask<RegistrySnapshot>> takeSnapshot,
        string topicPrefix,
        TimeSpan expectedHeartbeatInterval,
        TimeProvider timeProvider,
        ILogger logger)
    {
        _source = source;
        _takeSnapshot = takeSnapshot;
        _topicPrefix = topicPrefix;
        _heartbeatInterval = expectedHeartbeatInterval;
        _time = timeProvider;
        _logger = logger;
    }

    private TimeSpan SilenceThreshold => _heartbeatInterval * 3;

    /// <summary>
    /// Runs the watch. The first snapshot failing (registry unreachable) throws; later failures become
    /// <see cref="RegistryWatchEventKind.RegistrySilent"/> and are retried on the next broadcast, and while the
    /// registry stays silent, by polling for a snapshot with backoff (up to every 30 s).
    /// </summary>
    public async IAsyncEnumerable<RegistryWatchEvent> RunAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = _source.Reader;

        // Hearing one broadcast first proves the subscription is live, so no change between the snapshot and
        // the subscription taking effect is lost. Without one in time (three heartbeat periods, at least a second),
        // the snapshot goes ahead regardless and the heartbeat sequence check catches anything missed.
        var firstWait = SilenceThreshold > MinFirstBroadcastWait ? SilenceThreshold : MinFirstBroadcastWait;
        await WaitForBroadcastAsync(firstWait, cancellationToken).ConfigureAwait(false);

        var initial = await _takeSnapshot(cancellationToken).ConfigureAwait(false);
        yield return Adopt(initial, RegistryResyncReason.Initial, "initial snapshot");

        var pendingResync = (RegistryResyncReason?)null;
        var silentPoll = SilenceThreshold;
        while (true)
        {
            if (!await WaitForBroadcastAsync(_silent ? silentPoll : SilenceThreshold, cancellationToken).ConfigureAwait(false))
            {
                if (reader.Completion.IsCompleted) yield break;
                if (!_silent)
                {
                    _silent = true;
                    silentPoll = SilenceThreshold;
                    yield return Status(RegistryWatchEventKind.RegistrySilent,
                        $"no broadcast from the registry for {SilenceThreshold.TotalSeconds:0.#} s (three heartbeat periods)");
                    continue;
                }

                // Still silent: ask for a snapshot now and then (backing off), in case requests get through while
                // broadcasts do not, so a restart or missed changes are still reported.
                silentPoll = silentPoll * 2 < MaxSilentPoll ? silentPoll * 2 : MaxSilentPoll;
                var polled = await TryTakeSnapshotAsync(cancellationToken).ConfigureAwait(false);
                if (polled is null || (polled.Epoch == _epoch && polled.Sequence == _sequence)) continue;
                if (polled.Epoch != _epoch) yield return EpochChanged(polled.Epoch);
                pendingResync = null;
                yield return Adopt(polled,
                    polled.Epoch != _epoch ? RegistryResyncReason.EpochChanged : RegistryResyncReason.Gap,
                    "the registry answered a snapshot request while its broadcasts are silent");
                continue;
            }

            while (reader.TryRead(out var broadcast))
            {
                if (broadcast.Lost is { } lost)
                {
                    // A watch stream ended and was opened again from now: what happened in between comes by snapshot.
                    var resynced = await TryTakeSnapshotAsync(cancellationToken).ConfigureAwait(false);
                    if (resynced is null)
                    {
                        pendingResync = RegistryResyncReason.Retried;
                        continue;
                    }
                    pendingResync = null;
                    if (resynced.Epoch != _epoch) yield return EpochChanged(resynced.Epoch);
                    yield return Adopt(resynced, resynced.Epoch != _epoch ? RegistryResyncReason.EpochChanged : RegistryResyncReason.Gap, lost);
                    continue;
                }
                var epochOfBroadcast = broadcast.Change?.Epoch ?? broadcast.Heartbeat!.Epoch;
                if (_retiredEpochs.Contains(epochOfBroadcast)) continue; // a straggler from a registry already replaced

                if (_silent && epochOfBroadcast == _epoch)
                {
                    _silent = false;
                    yield return Status(RegistryWatchEventKind.RegistryResumed, "the registry is heard again");
                }

                if (broadcast.Heartbeat is { IntervalMs: > 0 } beat)
                    _heartbeatInterval = TimeSpan.FromMilliseconds(beat.IntervalMs);

                RegistryResyncReason? resync = null;
                var detail = "";
                if (epochOfBroadcast != _epoch)
                {
                    resync = RegistryResyncReason.EpochChanged;
                    detail = $"broadcast from epoch {epochOfBroadcast} while following {_epoch}";
                }
                else if (pendingResync is { } retry)
                {
                    resync = retry;
                    detail = "retrying a resync the registry did not answer";
                }
                else if (broadcast.Heartbeat is { } streamed && broadcast.Previous is { } before)
                {
                    // A watch stream's heartbeat: the changes up to its sequence were sent or not for this watch.
                    if (before > _sequence)
                    {
                        resync = RegistryResyncReason.Gap;
                        detail = $"the watch stream continues from {before}, last change seen is {_sequence}";
                    }
                    else
                    {
                        _sequence = Math.Max(_sequence, streamed.Sequence);
                        if (streamed.Stopping) yield return Status(RegistryWatchEventKind.RegistryStopping, "the registry announced an orderly shutdown");
                    }
                }
                else if (broadcast.Heartbeat is { } heartbeat)
                {
                    if (heartbeat.Sequence > _sequence)
                    {
                        resync = RegistryResyncReason.Gap;
                        detail = $"heartbeat reports sequence {heartbeat.Sequence}, last change seen is {_sequence}";
                    }
                    else if (heartbeat.Stopping)
                    {
                        yield return Status(RegistryWatchEventKind.RegistryStopping, "the registry announced an orderly shutdown");
                    }
                }
                else if (broadcast.Change is { } change)
                {
                    if (change.Sequence <= _sequence) continue; // already part of the snapshot
                    if (!KnownChangeTypes.Contains(change.ChangeType))
                    {
                        // A newer registry's change this client cannot apply: the snapshot carries its effect.
                        resync = RegistryResyncReason.Gap;
                        detail = $"unknown change type '{change.ChangeType}' at sequence {change.Sequence}";
                    }
                    else if (broadcast.Previous is { } previous ? previous > _sequence : change.Sequence != _sequence + 1)
                    {
                        // On a watch stream, the changes between previous and this one were not for this watch.
                        resync = RegistryResyncReason.Gap;
                        detail = broadcast.Previous is { } p
                            ? $"the watch stream continues from {p}, last change seen is {_sequence}"
                            : $"expected sequence {_sequence + 1}, got {change.Sequence}";
                    }
                    else
                    {
                        _sequence = change.Sequence;
                        if (ChangeTypes.TopicOf(change.ChangeType).StartsWith(_topicPrefix, StringComparison.Ordinal))
                        {
                            yield return new RegistryWatchEvent
                            {
                                Kind = RegistryWatchEventKind.Change,
                                Epoch = _epoch,
                                Sequence = _sequence,
                                Change = change,
                                Detail = $"{change.ChangeType} {change.Key}",
                                ObservedAt = _time.GetUtcNow(),
                            };
                        }
                    }
                }

                if (resync is null) continue;
                var snapshot = await TryTakeSnapshotAsync(cancellationToken).ConfigureAwait(false);
                if (snapshot is null)
                {
                    pendingResync = resync == RegistryResyncReason.EpochChanged ? RegistryResyncReason.EpochChanged : RegistryResyncReason.Retried;
                    if (!_silent)
                    {
                        _silent = true;
                        yield return Status(RegistryWatchEventKind.RegistrySilent, "the registry did not answer a snapshot request; will retry on the next broadcast");
                    }
                    continue;
                }
                pendingResync = null;
                _silent = false;
                if (snapshot.Epoch != _epoch)
                {
                    yield return EpochChanged(snapshot.Epoch);
                    resync = RegistryResyncReason.EpochChanged;
                }
                yield return Adopt(snapshot, resync.Value, detail);
            }
        }
    }

    private RegistryWatchEvent Adopt(RegistrySnapshot snapshot, RegistryResyncReason reason, string detail)
    {
        if (_epoch.Length > 0 && snapshot.Epoch != _epoch) _retiredEpochs.Add(_epoch);
        _epoch = snapshot.Epoch;
        _sequence = snapshot.Sequence;
        RegistryClientLog.WatchResynced(_logger, _epoch, _sequence, detail);
        return new RegistryWatchEvent
        {
            Kind = RegistryWatchEventKind.Resynced,
            Epoch = _epoch,
            Sequence = _sequence,
            Snapshot = snapshot,
            ResyncReason = reason,
            Detail = detail,
            ObservedAt = _time.GetUtcNow(),
        };
    }

    private RegistryWatchEvent EpochChanged(string newEpoch) => new()
    {
        Kind = RegistryWatchEventKind.EpochChanged,
        Epoch = newEpoch,
        PreviousEpoch = _epoch,
        Sequence = _sequence,
        Detail = $"registry epoch changed from {_epoch} to {newEpoch}",
        ObservedAt = _time.GetUtcNow(),
    };

    private RegistryWatchEvent Status(RegistryWatchEventKind kind, string detail) => new()
    {
        Kind = kind,
        Epoch = _epoch,
        Sequence = _sequence,
        Detail = detail,
        ObservedAt = _time.GetUtcNow(),
    };

    private async ValueTask<RegistrySnapshot?> TryTakeSnapshotAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _takeSnapshot(cancellationToken).ConfigureAwait(false);
        }
        catch (UnavailableException ex)
        {
            RegistryClientLog.WatchSnapshotFailed(_logger, ex.Code, ex.Message);
            return null;
        }
    }

    /// <summary>True when a broadcast is ready to read; false after <paramref name="timeout"/> or when the source ended.</summary>
    private async ValueTask<bool> WaitForBroadcastAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var reader = _source.Reader;
        if (reader.TryPeek(out _)) return true;
        try
        {
            // WaitToReadAsync does not consume, so abandoning it on timeout loses nothing.
            return await reader.WaitToReadAsync(cancellationToken).AsTask()
                .WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The timer and the broadcast's wake-up both run on the thread pool; on a loaded machine the timer can
            // win although the broadcast is already queued. That is not silence: look before saying so.
            return reader.TryPeek(out _);
        }
    }
}
