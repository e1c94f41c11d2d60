using System.Collections.Concurrent;
using System.Diagnostics;
using Onex.Bus;
using Onex.Events;

namespace Onex.Diagnostics;

/// <summary>
/// One bus participant's tracing and metrics, tagged with its bus name and backend: backends call
/// <see cref="StartPublish"/> around publishing, <see cref="EventChannel"/> reports deliveries and
/// <see cref="EventBusHealth"/> drops. Reached through <see cref="EventBusHealth.Telemetry"/>.
/// </summary>
/// <remarks>
/// The topic tag has bounded cardinality: a participant's first <see cref="MaxTopicTags"/> distinct topics are tags
/// of their own, later ones share <see cref="OnexBusDiagnostics.OtherTopics"/>, so a bus with unbounded topics cannot
/// grow a metrics backend without bound.
/// </remarks>
public sealed class BusTelemetry
{
    /// <summary>How many distinct topics one participant tags its measurements with before folding the rest.</summary>
    public const int MaxTopicTags = 64;

    private readonly ConcurrentDictionary<string, TopicTagsEntry> _topicTags = new(StringComparer.Ordinal);
    private readonly KeyValuePair<string, object?>[] _otherTags;
    private readonly KeyValuePair<string, object?>[][] _dropTags;
    private TopicTagsEntry? _lastTopic;

    /// <summary>Creates the telemetry of a participant of bus <paramref name="bus"/> on <paramref name="backend"/>.</summary>
    public BusTelemetry(string bus, string backend)
    {
        Bus = bus ?? "";
        Backend = backend ?? "";
        _otherTags = Tags(OnexBusDiagnostics.OtherTopics);
        _dropTags = Enum.GetValues<DropCause>()
            .Select(cause => new KeyValuePair<string, object?>[]
            {
                new("bus", Bus), new("backend", Backend), new("cause", CauseTag(cause)),
            })
            .ToArray();
    }

    /// <summary>Telemetry of a participant nobody named (tags empty).</summary>
    public static BusTelemetry Unnamed { get; } = new("", "");

    /// <summary>The bus tag.</summary>
    public string Bus { get; }

    /// <summary>The backend tag: memory, zmq, ipc or jetstream.</summary>
    public string Backend { get; }

    /// <summary>
    /// Begins publishing <paramref name="evt"/>: starts a producer span when something listens, and writes its
    /// trace context (or the ambient <see cref="Activity.Current"/>'s) into the event's headers, replacing
    /// <paramref name="evt"/> with that copy. The returned scope must see the outcome: hand the backend's pending
    /// publish to <see cref="PublishScope.Track"/>, or call <see cref="PublishScope.Fail"/> when it threw.
    /// </summary>
    public PublishScope StartPublish(ref OnexEvent evt)
    {
        var metered = OnexBusDiagnostics.Published.Enabled || OnexBusDiagnostics.PublishDuration.Enabled
                      || OnexBusDiagnostics.PublishedBytes.Enabled || OnexBusDiagnostics.PublishFailed.Enabled;
        var ambient = Activity.Current;
        var traced = OnexBusDiagnostics.ActivitySource.HasListeners();
        if (!metered && ambient is null && !traced) return default;

        Activity? activity = null;
        if (traced)
        {
            activity = OnexBusDiagnostics.ActivitySource.StartActivity("publish " + evt.Topic, ActivityKind.Producer);
            // The span is not the caller's Activity.Current: a publish returns before it ends.
            Activity.Current = ambient;
        }
        if (activity is not null)
        {
            if (activity.IsAllDataRequested)
            {
                OnexBusDiagnostics.SetMessagingTags(activity, evt, "publish");
                activity.SetTag("onex.bus.name", Bus);
                activity.SetTag("onex.bus.backend", Backend);
            }
            evt = OnexBusDiagnostics.WithTraceContext(evt, activity.Context);
        }
        else if (ambient is not null)
        {
            evt = OnexBusDiagnostics.WithTraceContext(evt, ambient.Context);
        }
        return new PublishScope(this, activity, metered ? TopicTags(evt.Topic) : null, metered ? TimeProvider.System.GetTimestamp() : 0, evt.Payload.Length);
    }

    /// <summary>Counts <paramref name="evt"/> as delivered and records its consumer span, a child of the producer's.</summary>
    internal void Delivered(OnexEvent evt)
    {
        if (OnexBusDiagnostics.Delivered.Enabled) OnexBusDiagnostics.Delivered.Add(1, TopicTags(evt.Topic));
        if (!OnexBusDiagnostics.ActivitySource.HasListeners()) return;
        var ambient = Activity.Current;
        OnexBusDiagnostics.TryGetParent(evt, out var parent);
        var activity = OnexBusDiagnostics.ActivitySource.StartActivity("receive " + evt.Topic, ActivityKind.Consumer, parent);
        if (activity is null) return;
        if (activity.IsAllDataRequested)
        {
            OnexBusDiagnostics.SetMessagingTags(activity, evt, "receive");
            activity.SetTag("onex.bus.name", Bus);
            activity.SetTag("onex.bus.backend", Backend);
        }
        activity.Stop();
        Activity.Current = ambient;
    }

    /// <summary>Counts <paramref name="count"/> events dropped for <paramref name="cause"/>.</summary>
    internal void Dropped(DropCause cause, long count)
    {
        if (OnexBusDiagnostics.Dropped.Enabled) OnexBusDiagnostics.Dropped.Add(count, _dropTags[(int)cause]);
    }

    /// <summary>The cause tag of <paramref name="cause"/>: subscriber_queue, publisher_queue or transport.</summary>
    public static string CauseTag(DropCause cause) => cause switch
    {
        DropCause.SubscriberQueue => "subscriber_queue",
        DropCause.PublisherQueue => "publisher_queue",
        DropCause.Transport => "transport",
        _ => cause.ToString().ToLowerInvariant(),
    };

    /// <inheritdoc/>
    public override string ToString() => $"BusTelemetry({Bus}, {Backend})";

    internal KeyValuePair<string, object?>[] TopicTags(string topic)
    {
        // Most participants publish and deliver one topic after another: the last one's tags are checked first, which
        // spares hashing the topic on both sides of every event while something listens to the meter.
        var last = Volatile.Read(ref _lastTopic);
        if (last is not null && string.Equals(last.Topic, topic, StringComparison.Ordinal)) return last.Tags;
        if (!_topicTags.TryGetValue(topic, out var entry))
        {
            if (_topicTags.Count >= MaxTopicTags) return _otherTags;
            entry = _topicTags.GetOrAdd(topic, t => new TopicTagsEntry(t, Tags(t)));
        }
        Volatile.Write(ref _lastTopic, entry); // an entry of the map: remembering it allocates nothing
        return entry.Tags;
    }

    private sealed record TopicTagsEntry(string Topic, KeyValuePair<string, object?>[] Tags);

    private KeyValuePair<string, object?>[] Tags(string topic) =>
        [new("bus", Bus), new("backend", Backend), new("topic", topic)];

    internal void Completed(in PublishScope scope, bool failed)
    {
        var tags = scope.Tags;
        if (tags is null) return;
        if (failed)
        {
            if (OnexBusDiagnostics.PublishFailed.Enabled) OnexBusDiagnostics.PublishFailed.Add(1, tags);
            return;
        }
        if (OnexBusDiagnostics.Published.Enabled) OnexBusDiagnostics.Published.Add(1, tags);
        if (OnexBusDiagnostics.PublishedBytes.Enabled) OnexBusDiagnostics.PublishedBytes.Add(scope.PayloadBytes, tags);
        if (OnexBusDiagnostics.PublishDuration.Enabled)
            OnexBusDiagnostics.PublishDuration.Record(TimeProvider.System.GetElapsedTime(scope.Started).TotalSeconds, tags);
    }
}

/// <summary>
/// One publish in flight, from <see cref="BusTelemetry.StartPublish"/>: ends its span and records its measurements
/// when the backend's publish completes. The default value does nothing (nothing was listening).
/// </summary>
public readonly struct PublishScope
{
    private readonly BusTelemetry? _owner;
    private readonly Activity? _activity;

    internal PublishScope(BusTelemetry owner, Activity? activity, KeyValuePair<string, object?>[]? tags, long started, int payloadBytes)
    {
        _owner = owner;
        _activity = activity;
        Tags = tags;
        Started = started;
        PayloadBytes = payloadBytes;
    }

    internal KeyValuePair<string, object?>[]? Tags { get; }

    internal long Started { get; }

    internal int PayloadBytes { get; }

    /// <summary>False when nothing listens: the backend's pending publish can be returned as it is.</summary>
    public bool IsActive => _owner is not null;

    /// <summary>
    /// Ends this scope when <paramref name="pending"/> completes (successfully or not) and returns a task that
    /// completes with it. No allocation when it has already completed.
    /// </summary>
    public ValueTask Track(ValueTask pending)
    {
        if (_owner is null) return pending;
        if (pending.IsCompletedSuccessfully)
        {
            pending.GetAwaiter().GetResult();
            Complete(null);
            return default;
        }
        return AwaitAsync(pending);
    }

    /// <summary>Ends this scope for a publish that threw <paramref name="error"/> before it was pending.</summary>
    public void Fail(Exception error) => Complete(error);

    private async ValueTask AwaitAsync(ValueTask pending)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Complete(ex);
            throw;
        }
        Complete(null);
    }

    private void Complete(Exception? error)
    {
        if (_owner is null) return;
        _owner.Completed(this, error is not null);
        if (_activity is null) return;
        if (error is not null) _activity.SetStatus(ActivityStatusCode.Error, error.Message);
        var ambient = Activity.Current;
        _activity.Stop();
        Activity.Current = ambient;
    }
}
