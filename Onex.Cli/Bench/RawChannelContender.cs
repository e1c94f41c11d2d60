using System.Diagnostics;
using System.Threading.Channels;

namespace Onex.Cli.Bench;

/// <summary>
/// The in-memory baseline: the payload written straight into a bounded <see cref="Channel{T}"/> with the capacity and
/// full mode of a bus subscription (1024, Wait; the same options <see cref="Onex.Bus.EventChannel"/> uses), read the
/// same way; a pair of such channels for the ping-pong.
/// </summary>
internal sealed class RawChannelContender(byte[] payload, int capacity) : IBenchContender
{
    public string Description => $"raw Channel<T> (bounded {capacity}, Wait)";

    public async Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken)
    {
        var channel = CreateChannel();
        var progress = new ReadProgress();
        var reader = Task.Run(() => BenchLoops.ReadAsync(channel.Reader, count, progress, cancellationToken), CancellationToken.None);

        var writer = channel.Writer;
        var started = Stopwatch.GetTimestamp();
        ReadOnlyMemory<byte> item = payload;
        for (var i = 0; i < count; i++)
            await writer.WriteAsync(item, cancellationToken).ConfigureAwait(false);
        await reader.ConfigureAwait(false);
        return progress.ToSample(count, started);
    }

    public async Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken)
    {
        var pings = CreateChannel();
        var pongs = CreateChannel();
        using var responder = BenchResponder.Start(async stop =>
        {
            await foreach (var ping in pings.Reader.ReadAllAsync(stop).ConfigureAwait(false))
                await pongs.Writer.WriteAsync(ping, stop).ConfigureAwait(false);
        }, cancellationToken, out var pingerToken);

        var samples = new long[count];
        try
        {
            ReadOnlyMemory<byte> item = payload;
            for (var i = 0; i < count; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await pings.Writer.WriteAsync(item, pingerToken).ConfigureAwait(false);
                await pongs.Reader.ReadAsync(pingerToken).ConfigureAwait(false);
                samples[i] = Stopwatch.GetTimestamp() - started;
            }
        }
        finally
        {
            await responder.StopAsync().ConfigureAwait(false);
        }
        return samples;
    }

    public ValueTask DisposeAsync() => default;

    private Channel<ReadOnlyMemory<byte>> CreateChannel() =>
        Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
}
