using System.Diagnostics;
using System.Reflection;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Benchmarks.Fuzz;

/// <summary>What the fuzzer sends.</summary>
internal enum FuzzMode
{
    /// <summary>Byte-level mutations of valid requests (bit flips, truncation, splices, noise): mostly unreadable frames.</summary>
    Bytes,
    /// <summary>
    /// Well-formed MessagePack that breaks the contract one field at a time (a value of the wrong type, nil, invalid
    /// UTF-8, a non-string key, a body that is not a map, an envelope key missing, duplicated or mistyped, deep nesting,
    /// trailing bytes): every message reaches the decoder's field checks, so nearly every reply is MALFORMED.
    /// </summary>
    Malformed,
    /// <summary>
    /// Well-formed requests to a node with an auth file (<see cref="FuzzAuthFile"/>), each with a credential chosen at
    /// random: none, an unknown token, another tenant's token (naming this tenant, or on this tenant's leases), a reader's
    /// token for a write, or a valid token (node, or an admin naming the tenant), on the tenants' own leases and other
    /// peers' (another node's lease, a wrong fencing token); an admin naming no tenant (ambiguous where both tenants
    /// hold the name); one in eight with a broken body. Every reply is checked against the code and details expected
    /// for its credential (UNAUTHENTICATED, PERMISSION_DENIED, LEASE_NOT_FOUND, NOT_OWNER, FENCED, INVALID_ARGUMENT,
    /// MALFORMED, or success).
    /// </summary>
    Auth,
}

/// <summary>What one fuzz run saw.</summary>
internal sealed record FuzzResult
{
    public long Sent { get; init; }
    public long Answered { get; init; }
    public long Unanswered { get; init; }
    public long BadReplies { get; init; }
    public long UnexplainedStateChanges { get; init; }
    /// <summary>Changes attributed to a request that got a success.</summary>
    public long AttributedChanges { get; init; }
    /// <summary>Changes the registry made by itself (expiry, missed heartbeats, grace period, an owner's health or removal).</summary>
    public long TimerChanges { get; init; }
    public IReadOnlyDictionary<string, long> Codes { get; init; } = new Dictionary<string, long>();
    public IReadOnlyList<string> Problems { get; init; } = [];
    public TimeSpan Elapsed { get; init; }
    /// <summary>The slowest answer to the snapshot request sent after each batch (a well-behaved client's view).</summary>
    public TimeSpan SlowestProbe { get; init; }
}

/// <summary>
/// Sends seeded mutations of valid request envelopes (bit flips, interesting bytes, truncation, splices, random
/// frames, wrong framing, other peers' leases and wrong fencing tokens) to a registry over one DEALER and checks every
/// reply: one per request within 5 s, a well-formed envelope, a success of a known reply type or an Error with a code
/// from the catalogue other than INTERNAL. After each batch the watched changes must be exactly those of the requests
/// that got a success, and the snapshot after must be the snapshot before with them applied (RegistryFuzzer.State.cs).
/// The same seed sends the same messages.
/// </summary>
internal sealed partial class RegistryFuzzer : IDisposable
{
    public const int BatchSize = 500;
    private const int Window = 64;
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(5);
    private const string Node = "fz-node";

    private static readonly HashSet<string> Catalogue = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToHashSet(StringComparer.Ordinal);

    private static readonly HashSet<string> ReplyTypes = new[]
    {
        typeof(PortGrant), typeof(PortLease), typeof(Ack), typeof(NodeRecord), typeof(EventBusRecord), typeof(ToolContractRecord),
        typeof(ValidationResult), typeof(IntrospectionResponse), typeof(RegistrySnapshot), typeof(Error),
    }.Select(MessageTypes.NameOf).ToHashSet(StringComparer.Ordinal);

    private static readonly byte[] Interesting = [0x00, 0x01, 0x7F, 0x80, 0xC0, 0xC1, 0xC2, 0xC3, 0xCC, 0xCF, 0xD3, 0xD9, 0xDB, 0xDE, 0xDF, 0xFF, 0xA0, 0x90];

    private readonly DealerSocket _dealer = new();
    private readonly FuzzChangeWatch _watch;
    private readonly Random _random;
    private readonly List<byte[]> _seeds = [];
    private readonly Dictionary<string, long> _codes = new(StringComparer.Ordinal);
    private readonly List<string> _problems = [];
    private long _ids;
    private readonly FuzzMode _mode;
    private readonly FuzzAuthFile? _auth;
    private readonly int _seed;

    /// <summary>
    /// A fuzzer of the registry at <paramref name="routerEndpoint"/>; <paramref name="auth"/> is the auth file the node
    /// was started with (required by <see cref="FuzzMode.Auth"/>, and then its admin token reads snapshots and changes).
    /// </summary>
    public RegistryFuzzer(string routerEndpoint, int seed, FuzzMode mode = FuzzMode.Bytes, FuzzAuthFile? auth = null)
    {
        if (mode == FuzzMode.Auth && auth is null) throw new ArgumentException("the auth mode needs the node's auth file", nameof(auth));
        _mode = mode;
        _auth = auth;
        _seed = seed;
        _watch = new FuzzChangeWatch(routerEndpoint, auth?.A.Admin);
        _random = new Random(seed);
        _dealer.Options.Linger = TimeSpan.Zero;
        _dealer.Options.ReceiveHighWatermark = 100_000;
        _dealer.Options.SendHighWatermark = 100_000;
        _dealer.Connect(routerEndpoint);
    }

    /// <summary>Builds some state (a node, leases, a bus, a tool) and the valid requests the mutations start from.</summary>
    public void Prepare()
    {
        _watch.Start();
        if (_mode == FuzzMode.Auth)
        {
            PrepareAuth();
            StartState();
            return;
        }
        Call(new NodeAnnouncement { NodeId = Node, HeartbeatIntervalMs = 600_000 });
        var leases = Expect<PortGrant>(Call(new PortRequest { NodeId = Node, Count = 4, TtlMs = 3_600_000, Purpose = "fuzz" })).Leases;
        Call(new EventBusRegistration { Name = "fz-bus", Kind = "zmq", Endpoints = ["tcp://127.0.0.1:1"], NodeId = Node });
        Call(new ToolContractRegistration
        {
            Name = "fz.tool", Version = "1.0.0", InputSchema = """{"type":"object","properties":{"n":{"type":"integer","minimum":1},"s":{"type":"string","pattern":"^[a-z]+$"}},"required":["n"]}""",
            OutputSchema = """{"type":"object"}""", ErrorCodes = [new ToolErrorCode { Code = "BAD", Description = "bad" }], NodeId = Node,
        });
        var lease = leases[0];
        // Requests that change nothing when repeated or that fail by design: the mutations' starting points.
        _seeds.Add(Encode(new PortRequest { NodeId = "fz-other", Count = 65, TtlMs = 3_600_000, Purpose = "x" })); // one too many
        _seeds.Add(Encode(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = Node, FencingToken = lease.FencingToken + 1 }));
        _seeds.Add(Encode(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "fz-thief", FencingToken = lease.FencingToken }));
        _seeds.Add(Encode(new PortConflict { LeaseId = "lease-unknown", NodeId = Node, FencingToken = 1, Reason = "bind failed" }));
        _seeds.Add(Encode(new NodeAnnouncement { NodeId = Node, HeartbeatIntervalMs = 600_000 }));
        _seeds.Add(Encode(new NodeHeartbeat { NodeId = Node }));
        _seeds.Add(Encode(new NodeDeparture { NodeId = "fz-ghost" }));
        _seeds.Add(Encode(new EventBusRegistration { Name = "fz-bus", Kind = "zmq", Endpoints = ["tcp://127.0.0.1:1"], NodeId = Node }));
        _seeds.Add(Encode(new EventBusDeregistration { Name = "fz-bus", NodeId = "fz-thief" }));
        _seeds.Add(Encode(new ValidatePayload { ToolName = "fz.tool", Direction = "input", Payload = """{"n":5,"s":"abc"}""" }));
        _seeds.Add(Encode(new IntrospectionRequest { Include = ["leases", "stats"], NodeId = Node }));
        _seeds.Add(Encode(new SnapshotRequest()));
        // Pathological schemas and payloads (issue 10): refused at registration or validated within budget, never INTERNAL.
        foreach (var schema in new[]
                 {
                     """{"type":"object","properties":{"s":{"type":"string","pattern":"^(a+)+$"}}}""",
                     """{"type":"object","patternProperties":{"^(a|aa)+$":{"type":"string"}}}""",
                     """{"type":"number","multipleOf":0}""",
                     """{"type":"object","dependencies":{"a":{"$ref":"http://127.0.0.1:1/remote.json"}}}""",
                 })
        {
            _seeds.Add(Encode(new ToolContractRegistration
            {
                Name = "fz.hostile", Version = "1.0.0", InputSchema = schema, OutputSchema = "{}", ErrorCodes = [], NodeId = Node,
            }));
        }
        _seeds.Add(Encode(new ValidatePayload { ToolName = "fz.tool", Direction = "input", Payload = """{"n":123456789012345678901234567890,"s":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}""" }));
        _seeds.Add(Encode(new WatchCredit { WatchId = "fz-no-watch", Credit = 5 }));
        _seeds.Add(Encode(new WatchCancel { WatchId = "fz-no-watch" }));
        StartState();
    }

    /// <summary>Runs <paramref name="iterations"/> mutated messages; <paramref name="progress"/> sees each finished batch.</summary>
    public FuzzResult Run(long iterations, Action<long>? progress = null)
    {
        var started = Stopwatch.GetTimestamp();
        long sent = 0, answered = 0, unanswered = 0, bad = 0, unexplained = 0;
        var slowest = TimeSpan.Zero;
        while (sent < iterations)
        {
            var batch = (int)Math.Min(BatchSize, iterations - sent);
            for (var done = 0; done < batch;)
            {
                var window = Math.Min(Window, batch - done);
                for (var i = 0; i < window; i++)
                {
                    if (_mode == FuzzMode.Auth) SendAuthRequest();
                    else SendMutation();
                }
                for (var i = 0; i < window; i++)
                {
                    var message = new NetMQMessage();
                    if (!_dealer.TryReceiveMultipartMessage(ReplyTimeout, ref message))
                    {
                        unanswered += window - i;
                        Problem($"no reply within {ReplyTimeout.TotalSeconds} s ({window - i} missing)");
                        break;
                    }
                    answered++;
                    var tenant = _mode == FuzzMode.Auth ? ActingTenant(message) : null;
                    if (!CheckReply(message) || (_mode == FuzzMode.Auth && !CheckAuthReply(message))) bad++;
                    Replied(message[message.FrameCount - 1].ToByteArray(), tenant);
                }
                done += window;
                sent += window;
            }
            var probe = Stopwatch.GetTimestamp();
            var after = Snapshot();
            var probed = Stopwatch.GetElapsedTime(probe);
            if (probed > slowest) slowest = probed;
            unexplained += CheckBatch(after);
            progress?.Invoke(sent);
        }
        return new FuzzResult
        {
            Sent = sent, Answered = answered, Unanswered = unanswered, BadReplies = bad, UnexplainedStateChanges = unexplained,
            AttributedChanges = _attributedChanges, TimerChanges = _timerChanges,
            Codes = new Dictionary<string, long>(_codes), Problems = _problems.ToList(), Elapsed = Stopwatch.GetElapsedTime(started),
            SlowestProbe = slowest,
        };
    }

    /// <summary>The registry's current change sequence (a snapshot over the same socket; every tenant's with an auth file).</summary>
    public long Sequence() => Snapshot().Sequence;

    private void SendMutation()
    {
        var seed = _seeds[_random.Next(_seeds.Count)];
        var frame = _mode == FuzzMode.Malformed ? Malform(seed) : Mutate(seed);
        Sent(frame);
        switch (_random.Next(20))
        {
            case 0: _dealer.SendMoreFrameEmpty().SendFrame(frame); break;                 // REQ framing
            case 1: _dealer.SendMoreFrame(frame).SendFrame(frame); break;                 // two content frames
            case 2: _dealer.SendFrameEmpty(); break;                                      // an empty frame alone
            case 3: _dealer.SendMoreFrameEmpty().SendMoreFrameEmpty().SendFrame(frame); break;
            default: _dealer.SendFrame(frame); break;
        }
    }

    private byte[] Mutate(byte[] seed)
    {
        var bytes = Fresh(seed);
        var rounds = _random.Next(4) == 0 ? 2 : 1; // mostly one change, so many messages still reach the handlers
        for (var r = 0; r < rounds; r++)
        {
            switch (_random.Next(9))
            {
                case 0: // flip a bit
                    if (bytes.Count > 0) bytes[_random.Next(bytes.Count)] ^= (byte)(1 << _random.Next(8));
                    break;
                case 1: // an interesting byte
                    if (bytes.Count > 0) bytes[_random.Next(bytes.Count)] = Interesting[_random.Next(Interesting.Length)];
                    break;
                case 2: // truncate
                    if (bytes.Count > 1)
                    {
                        var at = 1 + _random.Next(bytes.Count - 1);
                        bytes.RemoveRange(at, bytes.Count - at);
                    }
                    break;
                case 3: // insert random bytes
                    var insert = new byte[1 + _random.Next(8)];
                    _random.NextBytes(insert);
                    bytes.InsertRange(_random.Next(bytes.Count + 1), insert);
                    break;
                case 4: // duplicate a slice
                    if (bytes.Count > 2)
                    {
                        var start = _random.Next(bytes.Count - 1);
                        var length = 1 + _random.Next(Math.Min(32, bytes.Count - start));
                        bytes.InsertRange(_random.Next(bytes.Count + 1), bytes.GetRange(start, length));
                    }
                    break;
                case 5: // trailing bytes
                    bytes.Add(Interesting[_random.Next(Interesting.Length)]);
                    break;
                case 6: // random bytes instead of a message
                    var noise = new byte[1 + _random.Next(64)];
                    _random.NextBytes(noise);
                    return noise;
                case 7: // splice with another seed
                    var other = _seeds[_random.Next(_seeds.Count)];
                    var cut = _random.Next(Math.Min(bytes.Count, other.Length) + 1);
                    bytes = bytes.Take(cut).Concat(other.Skip(cut)).ToList();
                    break;
                default: // a long run of one byte (long strings, deep nesting when 0x91 or 0x81)
                    var fill = new[] { (byte)'a', (byte)0x91, (byte)0x81, (byte)0xFF }[_random.Next(4)];
                    bytes.InsertRange(_random.Next(bytes.Count + 1), Enumerable.Repeat(fill, 1 + _random.Next(300)));
                    break;
            }
        }
        return bytes.ToArray();
    }

    private static readonly object?[] WrongValues =
    [
        null, "text", "", 7, -1, 0, true, 1.5, float.NaN, ulong.MaxValue, long.MinValue, new byte[] { 1, 2, 3 },
        new object[] { 1, "a" }, Array.Empty<object>(), new Dictionary<string, object> { ["k"] = 1 }, new Dictionary<object, object> { [1] = 2 },
        new string('x', 300), "a\u0000b",
    ];

    // One contract-level fault in otherwise well-formed MessagePack (FuzzMode.Malformed).
    private byte[] Malform(byte[] seed)
    {
        var envelope = RegistryCodec.Decode(seed);
        var requestId = "fz" + Interlocked.Increment(ref _ids);
        var body = MessagePack.MessagePackSerializer.Deserialize<Dictionary<string, object?>>(envelope.Body);
        var keys = body.Keys.ToList();
        var field = keys.Count == 0 ? null : keys[_random.Next(keys.Count)];
        var fault = _random.Next(12);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePack.MessagePackWriter(buffer);
        // The envelope: faults 6-9 touch its keys, the others its body.
        var missing = fault == 7 ? new[] { "messageType", "requestId", "clientId", "body", "protocolVersion" }[_random.Next(5)] : null;
        var duplicate = fault == 8;
        w.WriteMapHeader(5 - (missing is null ? 0 : 1) + (duplicate ? 1 : 0) + (fault == 9 ? 1 : 0));
        if (fault == 9)
        {
            w.Write(_random.Next(2) == 0 ? 1 : 2.5); // a non-string key first
            w.Write("x");
        }
        if (missing != "protocolVersion")
        {
            w.Write("protocolVersion");
            if (fault == 6 && _random.Next(2) == 0) WriteValue(ref w, WrongValues[_random.Next(WrongValues.Length)]);
            else w.Write(ProtocolVersion.Current);
        }
        if (missing != "messageType")
        {
            w.Write("messageType");
            w.Write(envelope.MessageType);
        }
        if (missing != "requestId")
        {
            w.Write("requestId");
            if (fault == 6 && _random.Next(2) == 0) WriteValue(ref w, WrongValues[_random.Next(WrongValues.Length)]);
            else w.Write(requestId);
        }
        if (missing != "clientId")
        {
            w.Write("clientId");
            w.Write(fault == 6 ? new string('c', 200 + _random.Next(200)) : "fuzzer");
        }
        if (duplicate)
        {
            w.Write("requestId");
            w.Write(requestId + "-again");
        }
        if (missing != "body")
        {
            w.Write("body");
            WriteBody(ref w, body, field, fault);
        }
        w.Flush();
        var frame = buffer.WrittenSpan.ToArray();
        return fault == 11 ? [.. frame, 0xC0] : frame; // fault 11: a byte after the envelope
    }

    private void WriteBody(ref MessagePack.MessagePackWriter w, Dictionary<string, object?> body, string? field, int fault)
    {
        switch (fault)
        {
            case 4: // not a map
                WriteValue(ref w, new object?[] { new object[] { 1 }, "body", null, 5, new byte[] { 1 } }[_random.Next(5)]);
                return;
            case 5: // a non-string key inside
                w.WriteMapHeader(body.Count + 1);
                w.Write(_random.Next(100));
                w.Write("value");
                foreach (var (key, value) in body)
                {
                    w.Write(key);
                    WriteValue(ref w, value);
                }
                return;
        }
        w.WriteMapHeader(body.Count);
        foreach (var (key, value) in body)
        {
            if (key == field && fault == 3)
                w.WriteString([0x6B, 0xFF, 0xFE]); // a key that is not UTF-8
            else
                w.Write(key);
            if (key != field)
            {
                WriteValue(ref w, value);
                continue;
            }
            switch (fault)
            {
                case 0: // a value of another type
                case 1:
                    WriteValue(ref w, fault == 1 ? null : WrongValues[_random.Next(WrongValues.Length)]);
                    break;
                case 2: // a string that is not UTF-8
                    w.WriteString([0x61, 0xC3, 0x28, 0xED, 0xA0, 0x80]);
                    break;
                case 10: // deep nesting
                    var depth = 50 + _random.Next(500);
                    for (var i = 0; i < depth; i++) w.WriteArrayHeader(1);
                    w.Write(1);
                    break;
                default:
                    WriteValue(ref w, value);
                    break;
            }
        }
    }

    private static void WriteValue(ref MessagePack.MessagePackWriter w, object? value) =>
        MessagePack.MessagePackSerializer.Serialize(ref w, value);

    // The seed with fresh ids most of the time (else retries and id reuse of earlier ones).
    private List<byte> Fresh(byte[] seed)
    {
        if (_random.Next(10) == 0) return seed.ToList();
        var envelope = RegistryCodec.Decode(seed);
        var id = "fz" + Interlocked.Increment(ref _ids);
        return Reencode(envelope with { RequestId = id }).ToList();
    }

    private bool CheckReply(NetMQMessage message)
    {
        var frame = message[message.FrameCount - 1].ToByteArray();
        if (message.FrameCount > 2 || (message.FrameCount == 2 && !message[0].IsEmpty))
            return Problem($"a reply of {message.FrameCount} frames");
        RegistryEnvelope reply;
        try
        {
            reply = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
        }
        catch (OnexException ex)
        {
            return Problem($"an undecodable reply: {ex.Message}");
        }
        if (reply.ProtocolVersion != ProtocolVersion.Current) return Problem($"a reply with protocol version {reply.ProtocolVersion}");
        if (!ReplyTypes.Contains(reply.MessageType)) return Problem($"a reply of type {reply.MessageType}");
        if (reply.MessageType != nameof(Error))
        {
            Count("OK");
            return true;
        }
        Error error;
        try
        {
            error = RegistryCodec.DecodeBody<Error>(reply);
        }
        catch (OnexException ex)
        {
            return Problem($"an undecodable Error body: {ex.Message}");
        }
        Count(error.Code);
        if (!Catalogue.Contains(error.Code)) return Problem($"error code {error.Code} is not in the catalogue");
        if (error.Code == ErrorCodes.Internal) return Problem($"INTERNAL: {error.Message}");
        if (string.IsNullOrEmpty(error.Message)) return Problem($"{error.Code} without a message");
        return true;
    }

    private void Count(string code) => _codes[code] = _codes.GetValueOrDefault(code) + 1;

    private bool Problem(string what)
    {
        if (_problems.Count < 50) _problems.Add(what);
        return false;
    }

    private RegistryEnvelope Call<T>(T body, string? token = null)
    {
        // Its own client id: a mutated message may carry any id of the fuzzer's, and a reused id is refused.
        _dealer.SendFrame(RegistryCodec.Encode("probe" + Interlocked.Increment(ref _ids), "fuzzer-probe", body, token: token));
        if (!_dealer.TryReceiveFrameBytes(ReplyTimeout, out var frame))
            throw new TimeoutException($"the registry did not answer a {typeof(T).Name} within {ReplyTimeout.TotalSeconds} s");
        return RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
    }

    private static T Expect<T>(RegistryEnvelope reply) where T : class =>
        reply.MessageType == MessageTypes.Of<T>()
            ? RegistryCodec.DecodeBody<T>(reply)
            : throw new InvalidOperationException($"expected {typeof(T).Name}, got {reply.MessageType}: {(reply.MessageType == nameof(Error) ? RegistryCodec.DecodeBody<Error>(reply).Message : "")}");

    private byte[] Encode<T>(T body) => RegistryCodec.Encode("fz" + Interlocked.Increment(ref _ids), "fuzzer", body);

    private static byte[] Reencode(RegistryEnvelope envelope)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        writer.WriteMapHeader(5);
        writer.Write("protocolVersion");
        writer.Write(envelope.ProtocolVersion);
        writer.Write("messageType");
        writer.Write(envelope.MessageType);
        writer.Write("requestId");
        writer.Write(envelope.RequestId);
        writer.Write("clientId");
        writer.Write(envelope.ClientId);
        writer.Write("body");
        writer.WriteRaw(envelope.Body.Span);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public void Dispose()
    {
        _dealer.Dispose();
        _watch.Dispose();
    }
}
