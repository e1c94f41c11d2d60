using Onex.Errors;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>Endpoints and bus options for ZeroMQ tests: tcp:// on leased ports, ipc:// names under a temp dir.</summary>
public static class ZmqTestBus
{
    // A NetMQ ipc:// name maps to a hashed TCP port, which can be taken: a fresh name maps elsewhere.
    private const int IpcBindAttempts = 5;

    /// <summary>Bus options on two leased loopback TCP ports.</summary>
    public static async ValueTask<ZmqEventBusOptions> TcpOptionsAsync(string busName, CancellationToken cancellationToken = default)
    {
        var ports = await TestPorts.LeaseAsync(2, cancellationToken);
        return ZmqEventBusOptions.Default with
        {
            Name = busName,
            NodeId = "host",
            PublishEndpoint = $"tcp://127.0.0.1:{ports[0]}",
            SubscribeEndpoint = $"tcp://127.0.0.1:{ports[1]}",
            HandshakeTimeout = TimeSpan.FromSeconds(5),
        };
    }

    /// <summary>Bus options on two fresh ipc:// names under the temp directory.</summary>
    public static ZmqEventBusOptions IpcOptions(string busName)
    {
        var dir = Path.Combine(Path.GetTempPath(), "onex-zmq-tests");
        var unique = Guid.NewGuid().ToString("N");
        return ZmqEventBusOptions.Default with
        {
            Name = busName,
            NodeId = "host",
            PublishEndpoint = $"ipc://{dir}/{unique}-pub",
            SubscribeEndpoint = $"ipc://{dir}/{unique}-sub",
            HandshakeTimeout = TimeSpan.FromSeconds(5),
        };
    }

    /// <summary>Hosts a bus on tcp:// (leased ports) or ipc:// (fresh names, retried when a name's port is taken).</summary>
    public static async ValueTask<ZmqEventBus> HostAsync(string busName, bool ipc, CancellationToken cancellationToken = default)
    {
        if (!ipc) return await ZmqEventBus.HostAsync(await TcpOptionsAsync(busName, cancellationToken), cancellationToken);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ZmqEventBus.HostAsync(IpcOptions(busName), cancellationToken);
            }
            catch (LeaseException ex) when (ex.Code == ErrorCodes.PortUnavailable && attempt < IpcBindAttempts)
            {
                TestContext.Progress.WriteLine($"ipc endpoint unavailable, trying fresh names: {ex.Message}");
            }
        }
    }

    /// <summary>Joins the bus hosted by <paramref name="host"/> as node <paramref name="nodeId"/>.</summary>
    public static ValueTask<ZmqEventBus> JoinAsync(ZmqEventBus host, string nodeId, CancellationToken cancellationToken = default) =>
        ZmqEventBus.JoinAsync(host.Options with { NodeId = nodeId }, cancellationToken);
}
