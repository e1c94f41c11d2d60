using Onex.Bus;
using Onex.Events;

namespace Onex.InMemory;

/// <summary>
/// An <see cref="IEventBus"/> inside one process. Publishing hands the event object itself to every subscription
/// whose pattern matches the topic (no copy, no serialization), so subscribers must treat events as immutable.
/// </summary>
/// <remarks>
/// <para>Guarantee: <see cref="DeliveryGuarantee.AtMostOnceOrdered"/>. Events from one publisher (a sequence of
/// awaited <see cref="PublishAsync"/> calls) reach each subscriber in publish order. Events are lost only to a
/// subscription's drop mode or when the subscription goes away.</para>
/// <para>Backpressure: a subscription in a drop mode never holds up the publisher. A full subscription in
/// <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> mode makes <see cref="PublishAsync"/> wait
/// until that subscriber reads (or unsubscribes); every other matching subscription has already received the event
/// by then. Consumer code never runs on the publisher's thread, so a consumer that throws affects only itself.</para>
/// <para>Participants: <see cref="Join"/> returns another participant of the same logical bus, with its own
/// lifetime: disposing a participant completes only the subscriptions made through it.</para>
/// </remarks>
public sealed class InMemoryEventBus : IEventBus
{
    private readonly SubscriberSet _subscribers;
    private readonly HashSet<EventChannel> _own = [];
    private readonly Func<EventChannel, ValueTask> _unsubscribe;
    private readonly TimeProvider _timeProvider;
    private volatile bool _disposed;

    /// <summary>Creates the first participant of a new logical bus.</summary>
    /// <exception cref="ArgumentException"><see cref="InMemoryEventBusOptions.Name"/> is empty.</exception>
    public InMemoryEventBus(InMemoryEventBusOptions? options = null)
        : this(options ?? InMemoryEventBusOptions.Default, new SubscriberSet())
    {
    }

    private InMemoryEventBus(InMemoryEventBusOptions options, SubscriberSet subscribers)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Name, nameof(options));
        Options = options;
        _subscribers = subscribers;
        _timeProvider = options.TimeProvider ?? TimeProvider.System;
        _unsubscribe = Unsubscribe;
        Health = new EventBusHealth(BusConnectionState.Connected, new Onex.Diagnostics.BusTelemetry(options.Name, "memory"));
    }

    /// <summary>The settings this participant was created with.</summary>
    public InMemoryEventBusOptions Options { get; }

    /// <inheritdoc/>
    public string Name => Options.Name;

    /// <inheritdoc/>
    public DeliveryGuarantee Guarantee => DeliveryGuarantee.AtMostOnceOrdered;

    /// <inheritdoc/>
    /// <remarks>Always connected until disposed; drops come only from subscriptions' queues.</remarks>
    public EventBusHealth Health { get; }

    /// <summary>Live subscriptions of the logical bus, across all participants.</summary>
    internal int SubscriptionCount => _subscribers.Current.Length;

    /// <summary>
    /// Creates another participant of this logical bus: same name and clock, its own <paramref name="nodeId"/> and
    /// lifetime. Events flow between all participants as if they were one bus.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This participant was disposed.</exception>
    public InMemoryEventBus Join(string nodeId = "")
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new InMemoryEventBus(Options with { NodeId = nodeId }, _subscribers);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The event's topic is not a concrete topic.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, before publishing
    /// or while waiting for a full <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> subscription; some
    /// subscriptions may have received the event by then.</exception>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(evt);
        ObjectDisposedException.ThrowIf(_disposed, this);
        _subscribers.ValidTopics.EnsureValid(evt.Topic);
        cancellationToken.ThrowIfCancellationRequested();
        evt = evt.WithSource(Options.NodeId, _timeProvider);
        var telemetry = Health.Telemetry.StartPublish(ref evt);
        return telemetry.IsActive ? telemetry.Track(Deliver(evt, cancellationToken)) : Deliver(evt, cancellationToken);
    }

    private ValueTask Deliver(OnexEvent evt, CancellationToken cancellationToken)
    {
        var subscribers = _subscribers.Current;
        for (var i = 0; i < subscribers.Length; i++)
        {
            var subscriber = subscribers[i];
            if (subscriber.Matches(evt.Topic) && !subscriber.TryWrite(evt))
                return DeliverPastFullQueueAsync(subscribers, i, evt, cancellationToken);
        }
        return default;
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException"><paramref name="pattern"/> is not a valid pattern.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' capacity is less than 1.</exception>
    public ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        var channel = new EventChannel(pattern, options, _unsubscribe, Health);
        lock (_subscribers.Gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _own.Add(channel);
            _subscribers.Add(channel);
        }
        return new ValueTask<IEventSubscription>(channel);
    }

    /// <summary>
    /// Completes the subscriptions made through this participant (their pending reads finish, publishers waiting on
    /// them are released) and rejects further use. Other participants keep working. Idempotent.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        EventChannel[] mine;
        lock (_subscribers.Gate)
        {
            if (_disposed) return default;
            _disposed = true;
            mine = [.. _own];
            _own.Clear();
            _subscribers.Remove(mine);
        }
        foreach (var channel in mine) channel.TryComplete();
        Health.SetState(BusConnectionState.Closed, "disposed");
        return default;
    }

    /// <inheritdoc/>
    public override string ToString() => $"InMemoryEventBus({Name}, node '{Options.NodeId}')";

    /// <summary>
    /// The slow path, entered when <paramref name="subscribers"/>[<paramref name="firstFull"/>] is a full Wait-mode
    /// queue: everyone after it gets the event first, then the full queues are waited for in order.
    /// </summary>
    private static async ValueTask DeliverPastFullQueueAsync(EventChannel[] subscribers, int firstFull, OnexEvent evt, CancellationToken cancellationToken)
    {
        List<EventChannel>? alsoFull = null;
        for (var i = firstFull + 1; i < subscribers.Length; i++)
        {
            var subscriber = subscribers[i];
            if (subscriber.Matches(evt.Topic) && !subscriber.TryWrite(evt))
                (alsoFull ??= []).Add(subscriber);
        }

        await subscribers[firstFull].WriteAsync(evt, cancellationToken).ConfigureAwait(false);
        if (alsoFull is null) return;
        foreach (var subscriber in alsoFull)
            await subscriber.WriteAsync(evt, cancellationToken).ConfigureAwait(false);
    }


    private ValueTask Unsubscribe(EventChannel channel)
    {
        lock (_subscribers.Gate)
        {
            if (_own.Remove(channel)) _subscribers.Remove([channel]);
        }
        return default;
    }
}
