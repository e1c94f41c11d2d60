using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;

namespace Onex.Benchmarks.Fuzz;

/// <summary>
/// The fuzzer's view of the change stream: one <c>Watch</c> of every change (<c>registry.</c>) over its own DEALER
/// (PROTOCOL.md 16.7), so it works with access control on too, where the PUB endpoint carries heartbeats only. Checks
/// the stream's positions (no hole: every event's <c>previous</c> is what was covered before it) and grants back the
/// credit it uses.
/// </summary>
internal sealed class FuzzChangeWatch : IDisposable
{
    private const int Credit = 10_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly DealerSocket _dealer = new();
    private readonly string? _token;
    private readonly Queue<RegistryChange> _ahead = new();
    private readonly string _watchId = "fz-watch";
    private long _covered;
    private int _used;
    private long _credits;

    public FuzzChangeWatch(string routerEndpoint, string? token)
    {
        _token = token;
        _dealer.Options.Linger = TimeSpan.Zero;
        _dealer.Options.ReceiveHighWatermark = 100_000;
        _dealer.Connect(routerEndpoint);
    }

    /// <summary>Opens the watch; returns the sequence it starts after.</summary>
    public long Start()
    {
        _dealer.SendFrame(RegistryCodec.Encode(_watchId, "fuzzer-watch", new Watch { Prefix = "registry.", Credit = Credit }, token: _token));
        while (true)
        {
            var watchEvent = Next() ?? throw new TimeoutException($"no answer to Watch within {Timeout.TotalSeconds} s");
            if (watchEvent.Kind != WatchEventKinds.Started) continue;
            _covered = watchEvent.Sequence;
            return _covered;
        }
    }

    /// <summary>
    /// The changes after the last call up to and including <paramref name="target"/>, in sequence order (later ones are
    /// kept for the next call). <paramref name="problem"/> hears of a hole, an ended stream or a timeout.
    /// </summary>
    public List<RegistryChange> UpTo(long target, Action<string> problem)
    {
        var changes = new List<RegistryChange>();
        while (_ahead.Count > 0 && _ahead.Peek().Sequence <= target) changes.Add(_ahead.Dequeue());
        while (_covered < target)
        {
            var watchEvent = Next();
            if (watchEvent is null)
            {
                problem($"the watch did not reach sequence {target} within {Timeout.TotalSeconds} s (covered {_covered})");
                break;
            }
            if (watchEvent.Kind == WatchEventKinds.Ended)
            {
                problem($"the watch ended: {watchEvent.Code} {watchEvent.Message}");
                break;
            }
            if (watchEvent.Kind is not (WatchEventKinds.Change or WatchEventKinds.Heartbeat)) continue;
            _used++;
            if (watchEvent.Previous > _covered) problem($"a hole in the watch: an event after {watchEvent.Previous}, covered only to {_covered}");
            _covered = Math.Max(_covered, watchEvent.Sequence);
            if (watchEvent.Change is not { } change) continue;
            if (change.Sequence <= target) changes.Add(change);
            else _ahead.Enqueue(change);
        }
        // Credit back what was used; also the keep-alive the idle timeout asks for (credit 0 does that).
        _dealer.SendFrame(RegistryCodec.Encode($"fz-credit-{++_credits}", "fuzzer-watch", new WatchCredit { WatchId = _watchId, Credit = _used }, token: _token));
        _used = 0;
        return changes;
    }

    // The next WatchEvent (Acks of WatchCredit are skipped), or null after the timeout.
    private WatchEvent? Next()
    {
        while (_dealer.TryReceiveFrameBytes(Timeout, out var frame))
        {
            var envelope = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
            if (envelope.MessageType == nameof(Error))
                throw new InvalidOperationException($"the watch was refused: {RegistryCodec.DecodeBody<Error>(envelope).Code} {RegistryCodec.DecodeBody<Error>(envelope).Message}");
            if (envelope.MessageType == nameof(WatchEvent)) return RegistryCodec.DecodeBody<WatchEvent>(envelope);
        }
        return null;
    }

    public void Dispose() => _dealer.Dispose();
}
