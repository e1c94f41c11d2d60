using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MessagePack;
using Onex.Events;
using Onex.Tests.Events;

namespace Onex.Benchmarks.Events;

/// <summary>
/// Encoding and decoding one <see cref="OnexEvent"/> (64-byte payload, no headers, the bus benchmark's shape) with
/// the project's hand-written formatter, against the baseline it replaced: MessagePack's attribute-driven formatter,
/// run on <see cref="MirrorEvent"/> (shared with the tests), a type with the same keys and defaults. One operation is one event. The
/// <c>Codec*</c> rows add <see cref="OnexEventCodec"/>'s size checks and validation on top.
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class EventCodecBenchmarks
{
    private static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    private OnexEvent _event = null!;
    private MirrorEvent _mirror = null!;
    private byte[] _frame = [];

    [GlobalSetup]
    public void Setup()
    {
        _event = OnexEvent.Create("bench.data", new byte[64], sourceNodeId: "bench-host");
        _mirror = MirrorEvent.From(_event);
        _frame = OnexEventCodec.Default.Encode(_event);
        if (!_frame.AsSpan().SequenceEqual(MessagePackSerializer.Serialize(_mirror, Options)))
            throw new InvalidOperationException("The formatters disagree on the bytes; the comparison would be meaningless.");
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Encode")]
    public byte[] EncodeAttributeDriven() => MessagePackSerializer.Serialize(_mirror, Options);

    [Benchmark]
    [BenchmarkCategory("Encode")]
    public byte[] EncodeHandWritten() => MessagePackSerializer.Serialize(_event, Options);

    [Benchmark]
    [BenchmarkCategory("Encode")]
    public byte[] CodecEncode() => OnexEventCodec.Default.Encode(_event);

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Decode")]
    public MirrorEvent DecodeAttributeDriven() => MessagePackSerializer.Deserialize<MirrorEvent>(_frame, Options);

    [Benchmark]
    [BenchmarkCategory("Decode")]
    public OnexEvent DecodeHandWritten() => MessagePackSerializer.Deserialize<OnexEvent>(_frame, Options);

    [Benchmark]
    [BenchmarkCategory("Decode")]
    public OnexEvent CodecDecode() => OnexEventCodec.Default.Decode(_frame);
}
