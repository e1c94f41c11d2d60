using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Server;

namespace Onex.Tests.Registry;

/// <summary>Records what the registry broadcasts, in order.</summary>
internal sealed class RecordingChangeSink : IChangeSink
{
    public List<RegistryChange> Changes { get; } = [];
    public List<RegistryHeartbeat> Heartbeats { get; } = [];

    public void Publish(RegistryChange change) => Changes.Add(change);
    public void Publish(RegistryHeartbeat heartbeat) => Heartbeats.Add(heartbeat);

    public IEnumerable<string> TypesSince(int index) => Changes.Skip(index).Select(c => c.ChangeType);
}

/// <summary>A free check whose answer the test decides: every port is free unless marked busy.</summary>
internal sealed class ScriptedPortAvailability : IPortAvailability
{
    public HashSet<int> Busy { get; } = [];
    public int Checks => Checked.Count;
    public List<int> Checked { get; } = [];
    public List<string> Protocols { get; } = [];
    public bool Throws { get; set; }

    public bool IsFree(int port, string protocol)
    {
        Checked.Add(port);
        Protocols.Add(protocol);
        if (Throws) throw new InvalidOperationException("the free check broke");
        return !Busy.Contains(port);
    }
}

/// <summary>
/// The registry's domain on a fake clock: timers run inline when <see cref="FakeTimeProvider.Advance"/> reaches
/// them (in the node they are queued onto the poller thread instead), broadcasts go to a list.
/// </summary>
internal sealed class RegistryHarness : IDisposable
{
    public static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    /// <param name="options">Registry options; the defaults when null.</param>
    /// <param name="pool">The ports to lease; 20000-20009 when null.</param>
    /// <param name="availability">The free check; a <see cref="ScriptedPortAvailability"/> (every port free) when null.</param>
    /// <param name="verifyPortsInBackground">
    /// False (the default): the port verifier checks only when the test calls <see cref="RunVerifier"/>, so every
    /// other check happens inline, where the test can see it.
    /// </param>
    public RegistryHarness(
        RegistryNodeOptions? options = null, IEnumerable<int>? pool = null, IPortAvailability? availability = null, bool verifyPortsInBackground = false)
    {
        Options = options ?? RegistryNodeOptions.Default;
        Registry = new RegistryState(
            Options, (pool ?? Enumerable.Range(20000, 10)).ToList(), availability ?? Availability, Sink, Time, NullLoggerFactory.Instance, action => action(),
            verifyPortsInBackground: verifyPortsInBackground);
        Dispatcher = new RequestDispatcher(Registry, new ReplyCache(Options.ReplyCacheCapacity, Options.ReplyCacheRetention, Options.ReplyCacheMaxBytes, Time), NullLogger.Instance);
    }

    public FakeTimeProvider Time { get; } = new(Start);
    public RecordingChangeSink Sink { get; } = new();
    public ScriptedPortAvailability Availability { get; } = new();
    public RegistryNodeOptions Options { get; }
    public RegistryState Registry { get; }
    public RequestDispatcher Dispatcher { get; }

    public long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Runs the free checks the registry asked its verifier for; returns how many.</summary>
    public int RunVerifier() => Registry.Leases.Verified.Verifier.RunPending();

    /// <summary>Runs a request the way the server does: handle it, then re-arm the housekeeping timer.</summary>
    public T Do<T>(Func<RegistryState, T> request)
    {
        try
        {
            return request(Registry);
        }
        finally
        {
            Registry.ScheduleHousekeeping();
        }
    }

    /// <summary>Runs a request that must fail, returning the exception.</summary>
    public OnexException Fails(Func<RegistryState, object> request)
    {
        try
        {
            Do(request);
        }
        catch (OnexException ex)
        {
            return ex;
        }
        Assert.Fail("the request succeeded but was expected to fail");
        throw new InvalidOperationException("unreachable");
    }

    public PortLease Lease(string nodeId = "n1", long? ttlMs = null, int? preferredPort = null) =>
        Do(r => r.Handle(new PortRequest { NodeId = nodeId, TtlMs = ttlMs, PreferredPort = preferredPort })).Leases.Single();

    public NodeRecord Announce(string nodeId = "n1", long heartbeatIntervalMs = 1000) =>
        Do(r => r.Handle(new NodeAnnouncement { NodeId = nodeId, Name = nodeId, HeartbeatIntervalMs = heartbeatIntervalMs }));

    public EventBusRecord RegisterBus(string name, string nodeId = "n1", string kind = BusKinds.Zmq) =>
        Do(r => r.Handle(new EventBusRegistration { Name = name, Kind = kind, Endpoints = ["tcp://127.0.0.1:21000"], NodeId = nodeId }));

    public ToolContractRecord RegisterTool(string name, string version = "1.0.0", string nodeId = "n1", string? inputSchema = null) =>
        Do(r => r.Handle(ToolContracts.Registration(name, version, nodeId, inputSchema)));

    public void Dispose() => Registry.Dispose();
}

/// <summary>Tool contracts for tests.</summary>
internal static class ToolContracts
{
    public const string PersonSchema = """
        {
          "type": "object",
          "required": ["name", "age"],
          "properties": {
            "name": { "type": "string" },
            "age": { "type": "integer", "minimum": 0 }
          }
        }
        """;

    public const string ResultSchema = """{"type":"object","properties":{"ok":{"type":"boolean"}}}""";

    public static ToolContractRegistration Registration(string name, string version = "1.0.0", string nodeId = "n1", string? inputSchema = null) => new()
    {
        Name = name,
        Version = version,
        Description = "test tool",
        InputSchema = inputSchema ?? PersonSchema,
        OutputSchema = ResultSchema,
        ErrorCodes = [new ToolErrorCode { Code = "RATE_LIMITED", Description = "slow down" }],
        NodeId = nodeId,
    };
}
