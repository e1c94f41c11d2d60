using System.Text;
using System.Threading.Channels;

namespace Onex.RegistryNode.Http;

/// <summary>One Server-Sent Event of <c>/api/changes</c>: <c>snapshot</c>, <c>change</c> or <c>heartbeat</c>, with its JSON.</summary>
internal sealed record ChangeStreamEvent(string Name, string? ChangeType, byte[] Frame)
{
    public static ChangeStreamEvent Snapshot(string json) => new("snapshot", null, FrameOf("snapshot", json));
    public static ChangeStreamEvent Change(string changeType, string json) => new("change", changeType, FrameOf("change", json));
    public static ChangeStreamEvent Heartbeat(string json) => new("heartbeat", null, FrameOf("heartbeat", json));

    // JSON from ConvertToJson holds no newline, so one data line carries it.
    private static byte[] FrameOf(string name, string json) => Encoding.UTF8.GetBytes($"event: {name}\ndata: {json}\n\n");
}

/// <summary>
/// One SSE client's queue: bounded; an offer that does not fit means the client is too far behind and is dropped.
/// A change-type prefix filters <c>change</c> events (snapshots and heartbeats always pass).
/// </summary>
internal sealed class ChangeStreamClient(string? changeTypePrefix, int capacity)
{
    private readonly Channel<ChangeStreamEvent> _events = Channel.CreateBounded<ChangeStreamEvent>(
        new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ChannelReader<ChangeStreamEvent> Events => _events.Reader;

    /// <summary>Completes when the stream is ended by the view (before the client has read what is queued).</summary>
    public Task Closed => _closed.Task;

    /// <summary>True when queued or filtered out; false when the queue is full.</summary>
    public bool Offer(ChangeStreamEvent evt)
    {
        if (evt.ChangeType is { } type && changeTypePrefix is { } prefix && !type.StartsWith(prefix, StringComparison.Ordinal)) return true;
        return _events.Writer.TryWrite(evt);
    }

    /// <summary>Ends the stream (the view stopped, or the client fell behind).</summary>
    public void Close()
    {
        _events.Writer.TryComplete();
        _closed.TrySetResult();
    }
}
