using System.Buffers.Binary;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Onex.Events;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;

namespace Onex.Tests.JetStream;

/// <summary>Options, events and raw NATS access shared by the JetStream tests.</summary>
internal static class JetStreamTesting
{
    /// <summary>How long a test waits for something that should happen promptly.</summary>
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(15);

    /// <summary>Options for a throwaway bus on <paramref name="server"/>: the stream is deleted on dispose, reconnects are quick.</summary>
    public static JetStreamEventBusOptions Options(NatsServerFixture server, string busName) => JetStreamEventBusOptions.Default with
    {
        Url = server.Url,
        Name = busName,
        NodeId = "test",
        DeleteStreamOnDispose = true,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
        ReconnectWaitMax = TimeSpan.FromMilliseconds(500),
        PullExpiry = TimeSpan.FromSeconds(2),
    };

    /// <summary>A bus name no other test uses.</summary>
    public static string UniqueBusName(string prefix = "js") => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    /// <summary>An event whose payload is <paramref name="number"/> (int32, little-endian).</summary>
    public static OnexEvent Numbered(string topic, int number)
    {
        var payload = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(payload, number);
        return OnexEvent.Create(topic, payload, sourceNodeId: "test");
    }

    /// <summary>The number an event made with <see cref="Numbered"/> carries.</summary>
    public static int NumberOf(OnexEvent evt) => BinaryPrimitives.ReadInt32LittleEndian(evt.Payload.Span);

    /// <summary>A plain NATS.Net connection to <paramref name="server"/>, to look at streams and consumers from outside the bus.</summary>
    public static async Task<(NatsConnection Connection, NatsJSContext JetStream)> ConnectRawAsync(NatsServerFixture server)
    {
        var connection = new NatsConnection(NatsOpts.Default with { Url = server.Url, Name = "onex-test-raw" });
        await connection.ConnectAsync();
        return (connection, new NatsJSContext(connection));
    }

    /// <summary>Reads the next event of <paramref name="reader"/> within <see cref="WaitLimit"/>, failing with <paramref name="what"/>.</summary>
    public static async Task<OnexEvent> ReadWithinAsync(System.Threading.Channels.ChannelReader<OnexEvent> reader, string what)
    {
        using var timeout = new CancellationTokenSource(WaitLimit);
        try
        {
            return await reader.ReadAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"Timed out after {WaitLimit.TotalSeconds:0}s waiting for {what}.");
            throw;
        }
    }
}
