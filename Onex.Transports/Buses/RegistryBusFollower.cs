using Microsoft.Extensions.Logging;
using Onex.Bus;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Transports.Buses;

/// <summary>
/// Keeps a participant that joined a bus by name where the bus lives: it watches the registry's change stream for
/// that bus and, when <c>bus.updated</c> or <c>bus.registered</c> names other endpoints (its host came back on new
/// ports, or a Unix-socket host at another path), moves the participant there by itself; likewise when the registration advertises a new CURVE public key
/// (<see cref="Zmq.ZmqCurve.ServerKeyMetadata"/>: the host came back with new keys), unless the participant was given a
/// key of its own. <c>bus.removed</c> is reported as a connection-state notice (the host
/// left; the participant waits for it to be registered again). A registry that cannot be reached is retried with
/// back-off; the bus keeps working on its current endpoints meanwhile.
/// </summary>
internal sealed partial class RegistryBusFollower : IAsyncDisposable
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private readonly RegistryClient _registry;
    private readonly string _name;
    private readonly string _kind;
    private readonly Func<IReadOnlyList<string>, string?, CancellationToken, Task> _moveTo;
    private readonly bool _followKey;
    private string? _serverKey;
    private readonly EventBusHealth _health;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private IReadOnlyList<string> _endpoints;
    private bool _removed;
    private Task _running = Task.CompletedTask;

    public RegistryBusFollower(
        RegistryClient registry, string name, string kind, IReadOnlyList<string> endpoints,
        Func<IReadOnlyList<string>, string?, CancellationToken, Task> moveTo, EventBusHealth health, ILogger logger,
        string? serverKey = null, bool followKey = false)
    {
        _serverKey = serverKey;
        _followKey = followKey;
        _registry = registry;
        _name = name;
        _kind = kind;
        _endpoints = endpoints;
        _moveTo = moveTo;
        _health = health;
        _logger = logger;
    }

    /// <summary>How many times the participant moved to new endpoints.</summary>
    public int Moves { get; private set; }

    /// <summary>Starts following; the first snapshot is compared with the endpoints joined, so a move in between is not missed.</summary>
    public void Start() => _running = Task.Run(() => RunAsync(_stop.Token));

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var item in _registry.WatchAsync(ChangeTypes.TopicOf("bus."), cancellationToken).ConfigureAwait(false))
                {
                    switch (item.Kind)
                    {
                        case RegistryWatchEventKind.Resynced:
                            await ApplyAsync(item.Snapshot?.Buses.FirstOrDefault(b => b.Name == _name), cancellationToken).ConfigureAwait(false);
                            break;
                        case RegistryWatchEventKind.Change when item.Change is { } change && change.Key == _name:
                            await ApplyAsync(change.ChangeType == ChangeTypes.BusRemoved ? null : change.NewValue?.Bus, cancellationToken).ConfigureAwait(false);
                            break;
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is OnexException or ObjectDisposedException)
            {
                if (ex is ObjectDisposedException) return; // the registry client was disposed before the bus
                LogWatchFailed(_name, ex.Message);
            }
            try
            {
                await Task.Delay(RetryDelay, _registry.TimeProvider, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ApplyAsync(EventBusRecord? record, CancellationToken cancellationToken)
    {
        if (record is null)
        {
            if (_removed) return;
            _removed = true;
            LogRemoved(_name);
            // Reported even when already Disconnected (the participant lost its host first): the removal is news.
            _health.ReportConnection(BusConnectionState.Disconnected,
                $"bus '{_name}' was removed from the registry (its host left or was given up); waiting for it to be registered again");
            return;
        }
        _removed = false;
        if (record.Kind != _kind || record.Endpoints.Count == 0) return;
        // A host that dropped encryption is not followed there: this participant keeps encrypting and stays Disconnected.
        var advertisedKey = _followKey && record.Metadata is { } metadata && metadata.TryGetValue(Zmq.ZmqCurve.ServerKeyMetadata, out var key) ? key : null;
        var newKey = advertisedKey is not null && advertisedKey != _serverKey ? advertisedKey : null;
        if (newKey is null && record.Endpoints.SequenceEqual(_endpoints)) return;
        if (newKey is not null) LogNewKey(_name, newKey, record.NodeId);
        LogMoving(_name, string.Join(",", _endpoints), string.Join(",", record.Endpoints), record.NodeId);
        try
        {
            var checkedKey = newKey is null ? null : Security.CurveKeyPair.CheckPublicKey(newKey, $"bus '{_name}' metadata {Zmq.ZmqCurve.ServerKeyMetadata}");
            await _moveTo(record.Endpoints, checkedKey, cancellationToken).ConfigureAwait(false);
            _endpoints = record.Endpoints;
            _serverKey = newKey ?? _serverKey;
            Moves++;
        }
        catch (Exception ex) when (ex is OnexException or ArgumentException or FormatException)
        {
            // Registered endpoints (or a key) this participant cannot use, or the new host did not answer in time: the
            // sockets already point there and the backend keeps trying; the health shows Disconnected until it answers.
            _endpoints = record.Endpoints;
            _serverKey = newKey ?? _serverKey;
            LogMoveFailed(_name, ex.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus {Bus} was removed from the registry; waiting for its host to register it again")]
    private partial void LogRemoved(string bus);

    [LoggerMessage(Level = LogLevel.Information, Message = "Bus {Bus} moved from {From} to {To} (node {NodeId}); rejoining")]
    private partial void LogMoving(string bus, string from, string to, string nodeId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Bus {Bus} advertises a new CURVE key {Key} (node {NodeId}); reconnecting with it")]
    private partial void LogNewKey(string bus, string key, string nodeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus {Bus}: rejoining at the new endpoints failed: {Reason}; the bus keeps trying")]
    private partial void LogMoveFailed(string bus, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus {Bus}: cannot follow the registry's change stream ({Reason}); retrying")]
    private partial void LogWatchFailed(string bus, string reason);
}
