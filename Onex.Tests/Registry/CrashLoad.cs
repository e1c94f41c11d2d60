using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>
/// One client of the crash test: its own DEALER and client id, a seeded mix of grants, renewals, releases, conflicts,
/// announcements and bus registrations, each resent under the same ids until answered (the registry may be dead or
/// restarting). It keeps what the registry acknowledged, so the test can check the registry's state against it.
/// </summary>
internal sealed class CrashLoadClient : IDisposable
{
    private static readonly TimeSpan ResendEvery = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(60);

    private readonly DealerSocket _socket = new();
    private readonly Random _random;
    private readonly string _nodeId;
    private int _next;

    public CrashLoadClient(string router, int index, int seed)
    {
        ClientId = $"crash-client-{index}";
        _nodeId = $"crash-node-{index}";
        _random = new Random(seed);
        _socket.Options.Linger = TimeSpan.Zero;
        _socket.Connect(router);
    }

    public string ClientId { get; }

    /// <summary>Leases the registry granted this client and did not see released, by id.</summary>
    public Dictionary<string, PortLease> Held { get; } = new(StringComparer.Ordinal);

    /// <summary>Buses the registry acknowledged.</summary>
    public HashSet<string> Buses { get; } = new(StringComparer.Ordinal);

    /// <summary>Every fencing token the registry issued to this client (grants and replacements).</summary>
    public List<long> Tokens { get; } = [];

    /// <summary>Acknowledged requests as sent and answered, to resend later and compare.</summary>
    public List<(byte[] Request, byte[] Reply)> Acknowledged { get; } = [];

    /// <summary>Replies that contradict what was acknowledged before (a lost lease, a stale token).</summary>
    public List<string> Contradictions { get; } = [];

    public int Requests { get; private set; }
    public int Resends { get; private set; }

    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested) Step();
    }

    private void Step()
    {
        var roll = _random.Next(100);
        var held = Held.Values.OrderBy(l => l.LeaseId, StringComparer.Ordinal).ToList();
        PortLease? pick = held.Count > 0 ? held[_random.Next(held.Count)] : null;
        if (roll < 10 || (roll < 50 && held.Count < 8) || pick is null)
        {
            if (roll < 5)
            {
                Call(new NodeAnnouncement { NodeId = _nodeId, Name = ClientId, HeartbeatIntervalMs = 600_000 });
                var name = $"{ClientId}-bus-{_random.Next(4)}";
                if (Call(new EventBusRegistration { Name = name, Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = _nodeId }) is { } reply
                    && reply.MessageType == MessageTypes.Of<EventBusRecord>())
                    Buses.Add(name);
                return;
            }
            if (Call(new PortRequest { NodeId = _nodeId, Count = 1 + _random.Next(2), TtlMs = 600_000 }) is { } granted && granted.MessageType == MessageTypes.Of<PortGrant>())
                foreach (var lease in granted.BodyAs<PortGrant>().Leases) Keep(lease);
            return;
        }
        if (roll < 75)
        {
            Expect<PortLease>(Call(new LeaseRenewal { LeaseId = pick.LeaseId, NodeId = _nodeId, FencingToken = pick.FencingToken }), pick, replace: false);
        }
        else if (roll < 95)
        {
            if (Call(new LeaseRelease { LeaseId = pick.LeaseId, NodeId = _nodeId, FencingToken = pick.FencingToken }) is { } reply)
            {
                if (reply.MessageType == MessageTypes.Of<Ack>()) Held.Remove(pick.LeaseId);
                else Contradictions.Add($"release of {pick.LeaseId}: {reply.BodyAs<Error>().Code}");
            }
        }
        else
        {
            Expect<PortLease>(Call(new PortConflict { LeaseId = pick.LeaseId, NodeId = _nodeId, FencingToken = pick.FencingToken, Reason = "crash test" }), pick, replace: true);
        }
    }

    private void Expect<T>(RegistryEnvelope? reply, PortLease lease, bool replace)
    {
        if (reply is null) return;
        if (reply.MessageType != MessageTypes.Of<PortLease>())
        {
            var error = reply.BodyAs<Error>();
            // Out of free ports is no contradiction; anything else about a lease we hold is.
            if (error.Code != Onex.Errors.ErrorCodes.PortExhausted) Contradictions.Add($"{typeof(T).Name} of {lease.LeaseId}: {error.Code} {error.Message}");
            return;
        }
        var updated = reply.BodyAs<PortLease>();
        if (replace) Held.Remove(lease.LeaseId);
        Keep(updated, replace);
    }

    private void Keep(PortLease lease, bool issued = true)
    {
        Held[lease.LeaseId] = lease;
        if (issued) Tokens.Add(lease.FencingToken);
    }

    /// <summary>Sends a request and resends the same bytes until answered; null when the registry never answered.</summary>
    private RegistryEnvelope? Call<T>(T body)
    {
        var requestId = $"{ClientId}-{++_next}";
        var frame = RegistryCodec.Encode(requestId, ClientId, body);
        Requests++;
        var started = TimeProvider.System.GetTimestamp();
        _socket.SendFrame(frame);
        while (TimeProvider.System.GetElapsedTime(started) < GiveUpAfter)
        {
            if (!_socket.TryReceiveFrameBytes(ResendEvery, out var replyFrame))
            {
                Resends++;
                _socket.SendFrame(frame);
                continue;
            }
            var reply = TestDealer.DecodeReply(replyFrame);
            if (reply.RequestId != requestId) continue; // a late answer to an earlier resend
            Acknowledged.Add((frame, replyFrame));
            return reply;
        }
        Contradictions.Add($"{requestId} ({typeof(T).Name}) went unanswered for {GiveUpAfter.TotalSeconds} s");
        return null;
    }

    /// <summary>Resends an acknowledged request under its ids and returns the reply (null when none came).</summary>
    public byte[]? Resend(byte[] request)
    {
        _socket.SendFrame(request);
        var sentId = TestDealer.DecodeReply(request).RequestId;
        while (_socket.TryReceiveFrameBytes(TimeSpan.FromSeconds(10), out var frame))
            if (TestDealer.DecodeReply(frame).RequestId == sentId) return frame;
        return null;
    }

    public void Dispose() => _socket.Dispose();
}
