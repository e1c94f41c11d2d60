using System.Buffers.Binary;
using Onex.Events;

namespace Onex.Tests.InMemory;

/// <summary>Numbered events and a standard timeout for the in-memory tests.</summary>
internal static class TestEvents
{
    /// <summary>How long a test waits for something that should happen promptly.</summary>
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(10);

    /// <summary>An event whose payload is <paramref name="number"/> (int32, little-endian).</summary>
    public static OnexEvent Numbered(string topic, int number)
    {
        var payload = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(payload, number);
        return OnexEvent.Create(topic, payload, sourceNodeId: "test");
    }

    /// <summary>The number an event made with <see cref="Numbered"/> carries.</summary>
    public static int NumberOf(OnexEvent evt) => BinaryPrimitives.ReadInt32LittleEndian(evt.Payload.Span);

    /// <summary>Everything queued in <paramref name="reader"/> right now, as numbers.</summary>
    public static List<int> DrainNumbers(System.Threading.Channels.ChannelReader<OnexEvent> reader)
    {
        var numbers = new List<int>();
        while (reader.TryRead(out var evt)) numbers.Add(NumberOf(evt));
        return numbers;
    }
}
