using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>
/// The node side of <see cref="RegistryClient"/>: announces the node once, heartbeats it in the background, listens for
/// the registry's epoch on PUB, and after a registry restart (a new epoch, or NOT_FOUND for the node) re-asserts it: the
/// node, the buses and tools it remembers, and the leases of <see cref="RegistryLeases"/>. Departs on request.
/// </summary>
internal sealed class NodePresence(
    RegistryRequestEngine requests, RegistryLeases leases, RegistryClientOptions options, string nodeId, string pubEndpoint,
    ZmqSocketOptions sockets, ILoggerFactory loggerFactory, ILogger logger, Action<RegistryReassertedEventArgs> reasserted)
{
    private static readonly IReadOnlyList<string> StatsOnly = [IntrospectionSections.Stats];

    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, EventBusRegistration> _buses = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ToolContractRegistration> _tools = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _presenceGate = new(1, 1);
    private readonly object _reassertGate = new();
    private Task _reassertion = Task.CompletedTask;
    private Task _heartbeats = Task.CompletedTask;
    private Task _epochListener = Task.CompletedTask;
    private IRegistryBroadcastSource? _epochSource;
    private volatile string? _epoch;
    private volatile bool _present;
    private int _stopped;

    /// <summary>The registry epoch the node was last asserted in; null before it is announced.</summary>
    public string? Epoch => _epoch;

    /// <summary>A bus to register again after a registry restart.</summary>
    public void RememberBus(EventBusRegistration registration) => _buses[registration.Name] = registration;

    public void ForgetBus(string name) => _buses.TryRemove(name, out _);

    /// <summary>A tool contract to register again after a registry restart.</summary>
    public void RememberTool(ToolContractRegistration registration) => _tools[$"{registration.Name}@{registration.Version}"] = registration;

    public async ValueTask EnsurePresentAsync(CancellationToken cancellationToken)
    {
        if (_present) return;
        await _presenceGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_present) return;
            var epoch = await AnnounceAsync(cancellationToken).ConfigureAwait(false);
            _epoch = epoch;
            _present = true;
            RegistryClientLog.Announced(logger, nodeId, requests.Endpoint, epoch);
            _epochSource = new ZmqRegistryBroadcastSource(
                pubEndpoint, ChangeTypes.HeartbeatTopic, sockets, capacity: 1024, changeFilter: null,
                loggerFactory.CreateLogger<ZmqRegistryBroadcastSource>());
            // The timer starts now, not when the loop gets a thread: the first heartbeat is one interval after the announcement.
            var timer = new PeriodicTimer(options.HeartbeatInterval, requests.TimeProvider);
            _heartbeats = Task.Run(() => HeartbeatLoopAsync(timer, _stop.Token));
            _epochListener = Task.Run(() => EpochListenerLoopAsync(_epochSource, _stop.Token));
        }
        finally
        {
            _presenceGate.Release();
        }
    }

    /// <summary>
    /// Compares the registry's epoch with the one this node was asserted in, and re-asserts (or waits for the
    /// re-assertion under way) when they differ. Failures are logged: the caller decides what a missing lease means.
    /// </summary>
    /// <returns>The epoch the request endpoint answered with, or null when it could not be asked.</returns>
    public async ValueTask<string?> CheckEpochAsync(CancellationToken cancellationToken)
    {
        try
        {
            var stats = await DescribeStatsAsync(cancellationToken).ConfigureAwait(false);
            if (_present && stats.Epoch != _epoch)
                await TriggerReassertion($"registry epoch is {stats.Epoch}, node was asserted in {_epoch}").ConfigureAwait(false);
            return stats.Epoch;
        }
        catch (OnexException ex)
        {
            RegistryClientLog.ReassertFailed(logger, nodeId, ex.Code, ex.Message);
        }
        catch (ObjectDisposedException ex)
        {
            RegistryClientLog.ReassertFailed(logger, nodeId, ErrorCodes.Unavailable, ex.Message);
        }
        return null;
    }

    /// <summary>Stops heartbeating, listening and re-asserting, and waits for those loops to end.</summary>
    public async ValueTask StopAsync()
    {
        Task reassertion;
        lock (_reassertGate)
        {
            // Under the gate: a re-assertion triggered before this line is awaited below, none can start after it.
            Volatile.Write(ref _stopped, 1);
            reassertion = _reassertion;
        }
        _stop.Cancel();
        foreach (var background in new[] { _heartbeats, _epochListener, reassertion })
        {
            try
            {
                await background.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                // Stopped by _stop; or a loop that had just woken sent a request after the client was disposed, and that
                // request refused with ObjectDisposedException (seen on a loaded machine): stopped either way.
            }
        }
    }

    /// <summary>Tells the registry the node departs (one attempt), when it was announced and the options ask for it.</summary>
    public async ValueTask DepartAsync()
    {
        if (!_present || !options.DepartOnDispose) return;
        try
        {
            await requests.RequestAsync<NodeDeparture, Ack>(new NodeDeparture { NodeId = nodeId }, CancellationToken.None, singleAttempt: true).ConfigureAwait(false);
        }
        catch (OnexException ex)
        {
            RegistryClientLog.DepartureFailed(logger, nodeId, ex.Code, ex.Message);
        }
    }

    /// <summary>Frees what is left after <see cref="StopAsync"/>.</summary>
    public void Dispose()
    {
        _epochSource?.Dispose();
        _presenceGate.Dispose();
        _stop.Dispose();
    }

    private ValueTask<IntrospectionResponse> DescribeStatsAsync(CancellationToken cancellationToken) =>
        requests.RequestAsync<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = StatsOnly }, cancellationToken);

    /// <summary>Announces the node and returns the registry epoch it was announced in.</summary>
    private async ValueTask<string> AnnounceAsync(CancellationToken cancellationToken)
    {
        // The epoch is read first: if the registry restarts in between, the node is announced to the new
        // instance under the old epoch, and the epoch listener notices the difference and re-asserts.
        var stats = await DescribeStatsAsync(cancellationToken).ConfigureAwait(false);
        await requests.RequestAsync<NodeAnnouncement, NodeRecord>(new NodeAnnouncement
        {
            NodeId = nodeId,
            Name = options.NodeName ?? DefaultNodeName(),
            Host = Environment.MachineName,
            ProcessId = Environment.ProcessId,
            HeartbeatIntervalMs = (long)options.HeartbeatInterval.TotalMilliseconds,
            Metadata = options.NodeMetadata,
        }, cancellationToken).ConfigureAwait(false);
        return stats.Epoch;
    }

    private async Task HeartbeatLoopAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        using var owned = timer;
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await requests.RequestAsync<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = nodeId }, cancellationToken).ConfigureAwait(false);
            }
            catch (NotFoundException ex)
            {
                // The registry does not know this node: it restarted, or dropped the node after a long silence.
                _ = TriggerReassertion($"the registry does not know node {nodeId} ({ex.Message})");
            }
            catch (OnexException ex)
            {
                RegistryClientLog.HeartbeatFailed(logger, nodeId, ex.Code, ex.Message);
            }
        }
    }

    private async Task EpochListenerLoopAsync(IRegistryBroadcastSource source, CancellationToken cancellationToken)
    {
        // An epoch heard on PUB that the request endpoint did not confirm: the PUB endpoint belongs to another
        // registry (a misconfiguration), so its heartbeats must not trigger a re-assertion every second.
        string? unconfirmedEpoch = null;
        await foreach (var broadcast in source.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (broadcast.Heartbeat is not { } heartbeat || heartbeat.Stopping) continue;
            var known = _epoch;
            if (known is null || heartbeat.Epoch == known || heartbeat.Epoch == unconfirmedEpoch || !_reassertion.IsCompleted) continue;
            RegistryClientLog.EpochChanged(logger, known, heartbeat.Epoch);
            // The request endpoint is the authority: re-assert only when it is in a new epoch too.
            var routerEpoch = await CheckEpochAsync(cancellationToken).ConfigureAwait(false);
            if (routerEpoch is not null && routerEpoch != heartbeat.Epoch)
            {
                unconfirmedEpoch = heartbeat.Epoch;
                RegistryClientLog.ForeignBroadcasts(logger, pubEndpoint, heartbeat.Epoch, requests.Endpoint, routerEpoch);
            }
        }
    }

    /// <summary>Starts a re-assertion, or returns the one under way (there is only ever one at a time).</summary>
    private Task TriggerReassertion(string reason)
    {
        lock (_reassertGate)
        {
            if (!_reassertion.IsCompleted || Volatile.Read(ref _stopped) != 0) return _reassertion;
            _reassertion = Task.Run(() => ReassertAsync(reason, _stop.Token));
            return _reassertion;
        }
    }

    private async Task ReassertAsync(string reason, CancellationToken cancellationToken)
    {
        RegistryClientLog.Reasserting(logger, nodeId, reason);
        try
        {
            var epoch = await AnnounceAsync(cancellationToken).ConfigureAwait(false);
            var buses = 0;
            foreach (var registration in _buses.Values)
            {
                if (await RestoreAsync<EventBusRegistration, EventBusRecord>(registration, $"bus {registration.Name}", cancellationToken).ConfigureAwait(false))
                    buses++;
            }
            var tools = 0;
            foreach (var registration in _tools.Values)
            {
                if (await RestoreAsync<ToolContractRegistration, ToolContractRecord>(
                        registration, $"tool {registration.Name}@{registration.Version}", cancellationToken).ConfigureAwait(false))
                    tools++;
            }
            var (reclaimed, lost) = await leases.ReclaimAllAsync(cancellationToken).ConfigureAwait(false);
            var previous = _epoch;
            _epoch = epoch;
            RegistryClientLog.Reasserted(logger, nodeId, epoch, buses, tools, reclaimed, lost);
            reasserted(new RegistryReassertedEventArgs(previous, epoch, buses, tools, reclaimed, lost, reason));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is OnexException or ObjectDisposedException)
        {
            // The next registry heartbeat in the new epoch, or the next NOT_FOUND, triggers another attempt.
            RegistryClientLog.ReassertFailed(logger, nodeId, (ex as OnexException)?.Code ?? ErrorCodes.Unavailable, ex.Message);
        }
    }

    /// <summary>
    /// Registers one bus or tool again. A refusal (say, another node took the bus name meanwhile) is logged and
    /// skipped so the rest is still restored; an unreachable registry aborts the whole re-assertion for a retry.
    /// </summary>
    private async ValueTask<bool> RestoreAsync<TRequest, TReply>(TRequest registration, string what, CancellationToken cancellationToken)
        where TReply : class
    {
        try
        {
            await requests.RequestAsync<TRequest, TReply>(registration, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OnexException ex) when (ex is not UnavailableException)
        {
            RegistryClientLog.RestoreRefused(logger, nodeId, what, ex.Code, ex.Message);
            return false;
        }
    }

    private static string DefaultNodeName() =>
        Environment.ProcessPath is { } path ? Path.GetFileNameWithoutExtension(path) : "";
}
