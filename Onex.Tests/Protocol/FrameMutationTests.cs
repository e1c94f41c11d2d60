using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.Tests.Contracts;

namespace Onex.Tests.Protocol;

/// <summary>
/// Property-style robustness: seeded random damage (bit flips, truncations, insertions, deletions, splices) to valid
/// frames never makes a decoder throw anything but a MALFORMED, TOO_LARGE or UNSUPPORTED_VERSION <see cref="OnexException"/>
/// leaf: no IndexOutOfRange, NullReference, Overflow or raw MessagePack exception escapes.
/// </summary>
public class FrameMutationTests
{
    private const int Mutations = 2000;

    private static IReadOnlyList<byte[]> RegistryFrames() =>
        MessageTypes.All.Values.Select((type, i) => Bodies.Encode(type, $"r-{i}", "billing-worker-1/7f3a", SampleMessages.ByType[type])).ToArray();

    private static IReadOnlyList<byte[]> EventFrames() =>
    [
        OnexEventCodec.Default.Encode(OnexEvent.Create("registry.node.unhealthy",
            RegistryCodec.SerializeBody(SampleMessages.ByType[typeof(RegistryChange)]), "registry.change", "onex-registry",
            headers: new Dictionary<string, string> { ["traceparent"] = "00-abc-01" })),
        OnexEventCodec.Default.Encode(OnexEvent.Create("registry.heartbeat",
            RegistryCodec.SerializeBody(SampleMessages.ByType[typeof(RegistryHeartbeat)]), "registry.heartbeat", correlationId: "c-1")),
    ];

    [Test]
    public void Damaged_registry_frames_fail_only_with_onex_exceptions()
    {
        var outcome = Run(RegistryFrames(), seed: 20261124, frame =>
        {
            var envelope = RegistryCodec.Decode(frame);
            var type = MessageTypes.TypeOf(envelope.MessageType);
            if (type is not null) Bodies.Decode(type, envelope);
        });

        Assert.That(outcome.Unexpected, Is.Empty, "Decoding damaged frames threw non-Onex exceptions:\n" + string.Join("\n", outcome.Unexpected.Take(10)));
        Assert.That(outcome.Rejected, Is.GreaterThan(Mutations / 2), "Most damage should be detected; the mutations may not be reaching the decoder.");
    }

    [Test]
    public void Damaged_events_fail_only_with_onex_exceptions()
    {
        var outcome = Run(EventFrames(), seed: 1767225600, frame =>
        {
            var evt = OnexEventCodec.Default.Decode(frame);
            // A decoded event's payload is then read the way a registry subscriber reads it.
            if (evt.EventType == "registry.heartbeat") RegistryCodec.DeserializeBody<RegistryHeartbeat>(evt.Payload);
            else RegistryCodec.DeserializeBody<RegistryChange>(evt.Payload);
        });

        Assert.That(outcome.Unexpected, Is.Empty, "Decoding damaged events threw non-Onex exceptions:\n" + string.Join("\n", outcome.Unexpected.Take(10)));
        Assert.That(outcome.Rejected, Is.GreaterThan(Mutations / 2), "Most damage should be detected; the mutations may not be reaching the decoder.");
    }

    private sealed record Outcome(int Rejected, List<string> Unexpected);

    private static Outcome Run(IReadOnlyList<byte[]> frames, int seed, Action<byte[]> decode)
    {
        var random = new Random(seed);
        var rejected = 0;
        var unexpected = new List<string>();
        for (var i = 0; i < Mutations; i++)
        {
            var (kind, damaged) = Mutate(frames[random.Next(frames.Count)], frames[random.Next(frames.Count)], random);
            try
            {
                decode(damaged);
            }
            catch (OnexException ex) when (ex is MalformedMessageException or MessageTooLargeException or UnsupportedVersionException)
            {
                rejected++;
            }
            catch (Exception ex)
            {
                unexpected.Add($"mutation #{i} ({kind}): {ex.GetType().Name}: {ex.Message} at {ex.StackTrace?.Split('\n')[0].Trim()} frame={Convert.ToHexString(damaged)}");
            }
        }
        TestContext.Out.WriteLine($"{Mutations} mutations: {rejected} rejected, {Mutations - rejected - unexpected.Count} still decoded, {unexpected.Count} unexpected.");
        return new Outcome(rejected, unexpected);
    }

    private static (string Kind, byte[] Frame) Mutate(byte[] frame, byte[] other, Random random)
    {
        var bytes = frame.ToList();
        switch (random.Next(5))
        {
            case 0:
                for (int flips = random.Next(1, 5), f = 0; f < flips; f++)
                {
                    var at = random.Next(bytes.Count);
                    bytes[at] ^= (byte)(1 << random.Next(8));
                }
                return ("bit flips", bytes.ToArray());
            case 1:
                return ("truncation", bytes.Take(random.Next(bytes.Count)).ToArray());
            case 2:
                bytes.Insert(random.Next(bytes.Count + 1), (byte)random.Next(256));
                return ("inserted byte", bytes.ToArray());
            case 3:
                bytes.RemoveAt(random.Next(bytes.Count));
                return ("deleted byte", bytes.ToArray());
            default:
                // Splice: the head of one frame with the tail of another, so structure stays plausible.
                var cut = random.Next(bytes.Count);
                return ("splice", bytes.Take(cut).Concat(other.Skip(random.Next(other.Length))).ToArray());
        }
    }
}
