using Onex.Protocol;
using Onex.Tests.Registry;

namespace Onex.Tests.Watches;

/// <summary>A DEALER holding one watch, read frame by frame the way any client would (PROTOCOL.md 16.7).</summary>
internal sealed class RawWatcher : IDisposable
{
    private RawWatcher(TestDealer dealer, string watchId, WatchEvent started)
    {
        Dealer = dealer;
        WatchId = watchId;
        Started = started;
        Covered = started.Sequence;
    }

    public TestDealer Dealer { get; }

    public string WatchId { get; }

    /// <summary>The reply to the Watch request.</summary>
    public WatchEvent Started { get; }

    /// <summary>The sequence the stream has covered so far (checked message by message).</summary>
    public long Covered { get; private set; }

    /// <summary>Opens a watch; fails the test unless the registry answers <c>started</c>.</summary>
    public static RawWatcher Open(string endpoint, string? token, Watch watch)
    {
        var dealer = new TestDealer(endpoint) { Token = token };
        var requestId = dealer.NextRequestId();
        dealer.Send(requestId, watch);
        var started = TestDealer.Expect<WatchEvent>(dealer.Receive());
        Assert.That((started.Kind, started.WatchId), Is.EqualTo((WatchEventKinds.Started, requestId)), "the reply to Watch");
        return new RawWatcher(dealer, requestId, started);
    }

    /// <summary>Grants credit; its Ack is skipped by <see cref="Next"/>.</summary>
    public void Grant(int credit) => Dealer.Send(Dealer.NextRequestId(), new WatchCredit { WatchId = WatchId, Credit = credit });

    /// <summary>The next stream message (replies to this dealer's other requests skipped), its position checked against the last.</summary>
    public WatchEvent Next()
    {
        while (true)
        {
            var envelope = Dealer.Receive();
            if (envelope.RequestId != WatchId)
            {
                TestDealer.Expect<Ack>(envelope);
                continue;
            }
            var evt = TestDealer.Expect<WatchEvent>(envelope);
            Assert.That(evt.Previous, Is.EqualTo(Covered), $"stream message {evt.Kind} at {evt.Sequence} does not continue from {Covered}");
            Assert.That(evt.Sequence, Is.GreaterThanOrEqualTo(evt.Previous), "a stream message covers less than its previous position");
            Covered = evt.Sequence;
            return evt;
        }
    }

    /// <summary>Stream messages until one covers <paramref name="sequence"/> (heartbeats come every 50 ms in the test nodes).</summary>
    public List<WatchEvent> ReadUntilCovered(long sequence)
    {
        var events = new List<WatchEvent>();
        while (Covered < sequence)
        {
            var evt = Next();
            Assert.That(evt.Kind, Is.AnyOf(WatchEventKinds.Change, WatchEventKinds.Heartbeat), $"unexpected {evt.Kind}: {evt.Code} {evt.Message}");
            events.Add(evt);
        }
        return events;
    }

    /// <summary>The changes among <paramref name="events"/>.</summary>
    public static List<RegistryChange> Changes(IEnumerable<WatchEvent> events) => events.Where(e => e.Change is not null).Select(e => e.Change!).ToList();

    public void Dispose() => Dealer.Dispose();
}
