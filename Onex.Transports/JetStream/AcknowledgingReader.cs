using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using Onex.Events;

namespace Onex.Transports.JetStream;

/// <summary>
/// The <see cref="ChannelReader{T}"/> a JetStream subscription exposes: reads come from the subscription's queue,
/// and every request for the next event (<see cref="TryRead"/>, <see cref="ReadAsync"/>, <see cref="WaitToReadAsync"/>)
/// first acknowledges the event handed out before it. Peeking and counting acknowledge nothing.
/// </summary>
internal sealed class AcknowledgingReader(JetStreamSubscription owner, ChannelReader<OnexEvent> queue) : ChannelReader<OnexEvent>
{
    public override Task Completion => queue.Completion;

    public override bool CanCount => queue.CanCount;

    public override int Count => queue.Count;

    public override bool CanPeek => queue.CanPeek;

    public override bool TryPeek([MaybeNullWhen(false)] out OnexEvent item) => queue.TryPeek(out item);

    public override bool TryRead([MaybeNullWhen(false)] out OnexEvent item) => owner.TryHandOut(out item);

    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        // Waiting for more means the reader is done with what it holds.
        owner.AcknowledgeHandedOut();
        return owner.IsClosing ? new ValueTask<bool>(false) : queue.WaitToReadAsync(cancellationToken);
    }

    public override async ValueTask<OnexEvent> ReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (TryRead(out var item)) return item;
            if (!await WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                throw new ChannelClosedException();
        }
    }
}
