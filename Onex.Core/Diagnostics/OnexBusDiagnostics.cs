using System.Diagnostics;
using System.Diagnostics.Metrics;
using Onex.Events;

namespace Onex.Diagnostics;

/// <summary>
/// The bus's tracing and metrics, shared by every backend: an <see cref="ActivitySource"/> and a <see cref="Meter"/>,
/// both named <see cref="Name"/> (<c>Onex.Bus</c>), and the W3C trace-context headers events carry. Listen with
/// OpenTelemetry (<c>AddSource("Onex.Bus")</c>, <c>AddMeter("Onex.Bus")</c>) or with an <see cref="ActivityListener"/>
/// / <see cref="MeterListener"/>. With nothing listening, publishing and delivering do no extra work beyond checking
/// whether something listens. The instruments are listed in docs/BUSES.md ("Metrics and tracing").
/// </summary>
public static class OnexBusDiagnostics
{
    /// <summary>The name of the bus's activity source and meter.</summary>
    public const string Name = "Onex.Bus";

    /// <summary>The event header carrying the W3C <c>traceparent</c> of the producer's span.</summary>
    public const string TraceParentHeader = "traceparent";

    /// <summary>The event header carrying the W3C <c>tracestate</c> of the producer's span, when it has one.</summary>
    public const string TraceStateHeader = "tracestate";

    /// <summary>The tag value standing for every topic past a participant's first <see cref="BusTelemetry.MaxTopicTags"/>.</summary>
    public const string OtherTopics = "_other";

    /// <summary>Spans: <c>publish {topic}</c> (producer) and <c>receive {topic}</c> (consumer, a child of the producer's).</summary>
    public static ActivitySource ActivitySource { get; } = new(Name, typeof(OnexBusDiagnostics).Assembly.GetName().Version?.ToString());

    /// <summary>The bus's instruments (see the class remarks).</summary>
    public static Meter Meter { get; } = new(Name, typeof(OnexBusDiagnostics).Assembly.GetName().Version?.ToString());

    // Seconds, from a few microseconds (in-memory) to seconds (JetStream retrying within its publish timeout).
    private static readonly double[] DurationBuckets =
        [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    internal static readonly Counter<long> Published = Meter.CreateCounter<long>("onex.bus.published", "{event}",
        "Events this participant published (taken by its backend), by bus, backend and topic.");

    internal static readonly Counter<long> PublishedBytes = Meter.CreateCounter<long>("onex.bus.published.bytes", "By",
        "Payload bytes of the events this participant published, by bus, backend and topic.");

    internal static readonly Counter<long> PublishFailed = Meter.CreateCounter<long>("onex.bus.publish.failed", "{event}",
        "Publishes that threw (refused, too large, unavailable), by bus, backend and topic.");

    internal static readonly Histogram<double> PublishDuration = Meter.CreateHistogram("onex.bus.publish.duration", "s",
        "Time PublishAsync took until the backend had the event (JetStream: until the server acknowledged it), by bus, backend and topic.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    internal static readonly Counter<long> Delivered = Meter.CreateCounter<long>("onex.bus.delivered", "{event}",
        "Events handed to this participant's subscribers (read from a subscription), by bus, backend and topic.");

    internal static readonly Counter<long> Dropped = Meter.CreateCounter<long>("onex.bus.dropped", "{event}",
        "Events dropped, by bus, backend and cause (subscriber_queue, publisher_queue, transport): the counters of IEventBus.Health.");

    internal static readonly ObservableGauge<long> QueueDepth = Meter.CreateObservableGauge("onex.bus.queue.depth", BusQueueDepth.Observe, "{event}",
        "Events queued now, by bus, backend and queue (subscription: delivered to subscriptions and not yet read; publisher: published and not yet sent).");

    /// <summary>
    /// Starts a span for processing <paramref name="evt"/> whose parent is the producer's span (from the event's
    /// <c>traceparent</c> header), so the work a consumer does for an event joins the producer's trace. Returns null
    /// when nothing listens. Dispose it when the work is done; it becomes <see cref="Activity.Current"/> meanwhile.
    /// </summary>
    public static Activity? StartProcessActivity(OnexEvent evt, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(evt);
        if (!ActivitySource.HasListeners()) return null;
        TryGetParent(evt, out var parent);
        var activity = ActivitySource.StartActivity(name ?? "process " + evt.Topic, ActivityKind.Consumer, parent);
        if (activity is { IsAllDataRequested: true }) SetMessagingTags(activity, evt, "process");
        return activity;
    }

    /// <summary>The producer's span context carried by <paramref name="evt"/>, if it carries a valid one.</summary>
    public static bool TryGetParent(OnexEvent evt, out ActivityContext parent)
    {
        ArgumentNullException.ThrowIfNull(evt);
        parent = default;
        if (evt.Headers.Count == 0 || !evt.Headers.TryGetValue(TraceParentHeader, out var traceParent)) return false;
        evt.Headers.TryGetValue(TraceStateHeader, out var traceState);
        return ActivityContext.TryParse(traceParent, traceState, isRemote: true, out parent);
    }

    /// <summary>
    /// <paramref name="evt"/> with <paramref name="context"/> written into its <c>traceparent</c> (and
    /// <c>tracestate</c>) headers, other headers kept. The event itself is immutable: this is a copy.
    /// </summary>
    public static OnexEvent WithTraceContext(OnexEvent evt, ActivityContext context)
    {
        ArgumentNullException.ThrowIfNull(evt);
        if (context == default) return evt;
        var headers = new Dictionary<string, string>(evt.Headers.Count + 2, StringComparer.Ordinal);
        foreach (var header in evt.Headers) headers[header.Key] = header.Value;
        headers[TraceParentHeader] = FormatTraceParent(context);
        if (!string.IsNullOrEmpty(context.TraceState)) headers[TraceStateHeader] = context.TraceState;
        else headers.Remove(TraceStateHeader);
        return evt with { Headers = headers };
    }

    /// <summary>The W3C <c>traceparent</c> value of <paramref name="context"/> (version 00).</summary>
    public static string FormatTraceParent(ActivityContext context) =>
        $"00-{context.TraceId.ToHexString()}-{context.SpanId.ToHexString()}-{((context.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? "01" : "00")}";

    internal static void SetMessagingTags(Activity activity, OnexEvent evt, string operation)
    {
        // OpenTelemetry's messaging semantic conventions.
        activity.SetTag("messaging.system", "onex");
        activity.SetTag("messaging.operation.type", operation);
        activity.SetTag("messaging.destination.name", evt.Topic);
        activity.SetTag("messaging.message.id", evt.EventId);
        activity.SetTag("messaging.message.body.size", evt.Payload.Length);
    }
}
