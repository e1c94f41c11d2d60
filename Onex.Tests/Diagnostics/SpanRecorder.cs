using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Onex.Tests.Diagnostics;

/// <summary>
/// Records the stopped spans of one activity source whose name contains a mark (a test's unique
/// topic), and samples nothing else: tests running beside it see no spans and no trace headers added to their events.
/// </summary>
public sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _stopped = new();

    public SpanRecorder(string sourceName, string mark)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == sourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
                options.Name.Contains(mark, StringComparison.Ordinal) ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
            // Other recorders' sampled spans reach every listener of the source: keep only this one's.
            ActivityStopped = activity =>
            {
                if (activity.DisplayName.Contains(mark, StringComparison.Ordinal)) _stopped.Enqueue(activity);
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>The spans stopped so far, in stop order.</summary>
    public IReadOnlyList<Activity> Stopped => [.. _stopped];

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// Records the measurements of one meter whose tag equals a value (a
/// test's unique bus name), so instruments shared with tests running beside it do not disturb its sums.
/// </summary>
public sealed class MeasurementRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = new();
    private readonly string _tagKey;
    private readonly string _tagValue;

    public MeasurementRecorder(string meterName, string tagKey, string tagValue)
    {
        _tagKey = tagKey;
        _tagValue = tagValue;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Every measurement recorded so far.</summary>
    public IReadOnlyList<(string Instrument, double Value, Dictionary<string, object?> Tags)> All => [.. _measurements];

    /// <summary>The sum of <paramref name="instrument"/>'s measurements whose tags include all of <paramref name="tags"/>.</summary>
    public double Sum(string instrument, params (string Key, string Value)[] tags) =>
        Matching(instrument, tags).Sum(m => m.Value);

    /// <summary>How many measurements of <paramref name="instrument"/> have all of <paramref name="tags"/>.</summary>
    public int Count(string instrument, params (string Key, string Value)[] tags) => Matching(instrument, tags).Count();

    public void Dispose() => _listener.Dispose();

    private IEnumerable<(string Instrument, double Value, Dictionary<string, object?> Tags)> Matching(string instrument, (string Key, string Value)[] tags) =>
        _measurements.Where(m => m.Instrument == instrument && tags.All(t => Equals(m.Tags.GetValueOrDefault(t.Key), t.Value)));

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>();
        foreach (var tag in tags) copy[tag.Key] = tag.Value;
        if (!Equals(copy.GetValueOrDefault(_tagKey), _tagValue)) return;
        _measurements.Enqueue((instrument.Name, value, copy));
    }
}
