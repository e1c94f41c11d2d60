using System.Threading.Channels;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>
/// A subscription on an <see cref="IpcEventBus"/>: the shared <see cref="EventChannel"/> queue plus the id the broker
/// knows it by and the drops the broker reported for it (events it could not queue towards this participant).
/// </summary>
internal sealed class IpcSubscription : IEventSubscription
{
    private long _remoteDrops;

    private readonly EventBusHealth? _health;

    public IpcSubscription(uint id, string pattern, SubscriptionOptions? options, Func<IpcSubscription, ValueTask> onUnsubscribe, EventBusHealth? health = null)
    {
        Id = id;
        _health = health;
        Channel = new EventChannel(pattern, options, _ => onUnsubscribe(this), health);
        Lossless = Channel.FullMode == BoundedChannelFullMode.Wait;
    }

    /// <summary>The id in SUBSCRIBE/SUBSCRIBED/UNSUBSCRIBE/DROPPED frames, unique per participant.</summary>
    public uint Id { get; }

    /// <summary>The local queue.</summary>
    public EventChannel Channel { get; }

    /// <summary>True in <see cref="BoundedChannelFullMode.Wait"/> mode: the broker waits for room instead of dropping.</summary>
    public bool Lossless { get; }

    /// <inheritdoc/>
    public string Pattern => Channel.Pattern;

    /// <inheritdoc/>
    public ChannelReader<OnexEvent> Reader => Channel.Reader;

    /// <inheritdoc/>
    public long DroppedCount => Channel.DroppedCount + Interlocked.Read(ref _remoteDrops);

    /// <inheritdoc/>
    public long PendingBytes => Channel.PendingBytes;

    /// <summary>Adds drops the broker reported for this subscription.</summary>
    public void AddRemoteDrops(long count)
    {
        Interlocked.Add(ref _remoteDrops, count);
        _health?.CountDropped(DropCause.Transport, count, Pattern, "the host's queue towards this participant was full");
    }

    /// <inheritdoc/>
    public IAsyncEnumerator<OnexEvent> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        Channel.GetAsyncEnumerator(cancellationToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => Channel.DisposeAsync();

    /// <inheritdoc/>
    public override string ToString() => $"IpcSubscription({Id}, {Channel})";
}

/// <summary>
/// The subscriptions of one <see cref="IpcEventBus"/> instance, as a copy-on-write array so delivery reads it
/// without a lock. Delivery takes the synchronous fast path per queue and only awaits a queue that is full in
/// <see cref="BoundedChannelFullMode.Wait"/> mode.
/// </summary>
internal sealed class IpcLocalSubscriptions
{
    private readonly object _gate = new();
    private IpcSubscription[] _items = [];

    /// <summary>The participant's health, shared by the bus, its subscriptions and its connection to the host.</summary>
    public EventBusHealth Health { get; }
    private bool _closed;

    /// <summary>Creates the table of a participant whose measurements carry <paramref name="telemetry"/>'s tags.</summary>
    /// <param name="telemetry">The participant's measurements.</param>
    /// <param name="waitWhenFull">
    /// True on the host, whose broker serves every other target first and may then hold the publisher for a full
    /// Wait-mode subscription. False on a joined participant: one thread reads its connection for all its
    /// subscriptions, so a full Wait-mode subscription there drops and counts instead of stopping the others.
    /// </param>
    public IpcLocalSubscriptions(Onex.Diagnostics.BusTelemetry telemetry, bool waitWhenFull = true)
    {
        Health = new EventBusHealth(BusConnectionState.Connected, telemetry);
        _waitWhenFull = waitWhenFull;
    }

    private readonly bool _waitWhenFull;

    public IpcSubscription[] Snapshot => Volatile.Read(ref _items);

    /// <summary>
    /// Adds <paramref name="subscription"/>; false once <see cref="CompleteAll"/> ran.
    /// </summary>
    /// <exception cref="OnexException">The table already holds <paramref name="limit"/> subscriptions (<see cref="ErrorCodes.InvalidArgument"/>).</exception>
    public bool TryAdd(IpcSubscription subscription, int limit = int.MaxValue)
    {
        lock (_gate)
        {
            if (_closed) return false;
            if (_items.Length >= limit)
                throw new InvalidArgumentException($"A participant may hold at most {limit} subscriptions on one bus; dispose some first.",
                    new Dictionary<string, string> { ["limit"] = limit.ToString() });
            _items = [.. _items, subscription];
            return true;
        }
    }

    public bool Remove(IpcSubscription subscription)
    {
        lock (_gate)
        {
            var index = Array.IndexOf(_items, subscription);
            if (index < 0) return false;
            _items = [.. _items[..index], .. _items[(index + 1)..]];
            return true;
        }
    }

    public IpcSubscription? Find(uint id)
    {
        foreach (var item in Snapshot)
            if (item.Id == id) return item;
        return null;
    }

    /// <summary>Delivers <paramref name="evt"/> to every matching subscription.</summary>
    public ValueTask DeliverAsync(OnexEvent evt, CancellationToken cancellationToken)
    {
        var items = Snapshot;
        for (var i = 0; i < items.Length; i++)
        {
            var channel = items[i].Channel;
            if (!channel.Matches(evt.Topic) || channel.TryWrite(evt) || channel.IsCompleted) continue;
            if (!_waitWhenFull)
            {
                // Only a Wait-mode queue refuses a write: it loses this event, is told, and the others carry on.
                channel.CountDropped(1);
                continue;
            }
            return DeliverSlowAsync(evt, items, i, cancellationToken);
        }
        return default;
    }

    /// <summary>Completes every queue (readers drain and end) and refuses new subscriptions.</summary>
    public void CompleteAll()
    {
        IpcSubscription[] items;
        lock (_gate)
        {
            _closed = true;
            items = _items;
            _items = [];
        }
        foreach (var item in items) item.Channel.TryComplete();
    }

    private static async ValueTask DeliverSlowAsync(OnexEvent evt, IpcSubscription[] items, int from, CancellationToken cancellationToken)
    {
        // items[from] is matched, full and in Wait mode.
        await items[from].Channel.WriteAsync(evt, cancellationToken).ConfigureAwait(false);
        for (var i = from + 1; i < items.Length; i++)
        {
            var channel = items[i].Channel;
            if (!channel.Matches(evt.Topic) || channel.TryWrite(evt) || channel.IsCompleted) continue;
            await channel.WriteAsync(evt, cancellationToken).ConfigureAwait(false);
        }
    }
}
