using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Onex.Events;
using Onex.Transports.Ipc;

namespace Onex.Benchmarks.Ipc;

/// <summary>
/// The per-event cost of the publisher id and sequence number in Unix-socket event frames (protocol version 2): one
/// event's frame work on both sides (encode the PUBLISH frame, decode the event on receipt) without the numbers, then
/// with them (the publisher numbers the frame as it queues it, the subscriber reads the numbers and checks them).
/// 64-byte payloads, one topic. Target: no allocation added per event, time within the noise of the whole path.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Throughput, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class IpcEventNumberingBenchmarks
{
    private const string BenchTopic = "bench.numbering";
    private const int MaxFrame = 4 * 1024 * 1024;

    private readonly IpcEventNumbering _numbering = new();
    private readonly IpcGapCheck _check = new();
    private OnexEvent _event = null!;

    [GlobalSetup]
    public void Setup() => _event = OnexEvent.Create(BenchTopic, new byte[64], sourceNodeId: "bench");

    /// <summary>Encode a frame and decode its event, ignoring the numbers (the work every event did before).</summary>
    [Benchmark(Baseline = true)]
    public OnexEvent Frame_without_numbers()
    {
        var frame = IpcFrames.EncodeEvent(IpcFrameType.Publish, _event, OnexEventCodec.Default, MaxFrame);
        return OnexEventCodec.Default.Decode(frame.AsMemory(IpcFrames.HeaderBytes + IpcFrames.SequenceBytes));
    }

    /// <summary>The same, plus numbering at the publisher and the gap check at the subscriber.</summary>
    [Benchmark]
    public OnexEvent Frame_numbered_and_checked()
    {
        var frame = IpcFrames.EncodeEvent(IpcFrameType.Publish, _event, OnexEventCodec.Default, MaxFrame);
        _numbering.Stamp(frame, _event.Topic);
        var (publisher, sequence, eventBytes) = IpcFrames.ParseEvent(frame.AsMemory(IpcFrames.HeaderBytes));
        var evt = OnexEventCodec.Default.Decode(eventBytes);
        if (_check.Check(publisher, evt.Topic, sequence) != 0) throw new InvalidOperationException("Consecutive numbers counted as a loss.");
        return evt;
    }
}
