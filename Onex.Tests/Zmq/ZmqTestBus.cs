using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Zmq;

/// <summary>Endpoints and bus options for ZeroMQ tests: tcp:// on leased ports, ipc:// names that NetMQ maps onto leased ports.</summary>
public static class ZmqTestBus
{
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

    /// <summary>
    /// Bus options on two ipc:// names under the temp directory, each chosen so that NetMQ maps it to a port leased
    /// for this test (see <see cref="IpcNameOnPort"/>).
    /// </summary>
    public static async ValueTask<ZmqEventBusOptions> IpcOptionsAsync(string busName, CancellationToken cancellationToken = default)
    {
        var ports = await TestPorts.LeaseAsync(2, cancellationToken);
        var dir = Path.Combine(Path.GetTempPath(), "onex-zmq-tests");
        var unique = Guid.NewGuid().ToString("N");
        return ZmqEventBusOptions.Default with
        {
            Name = busName,
            NodeId = "host",
            PublishEndpoint = IpcNameOnPort($"ipc://{dir}/{unique}-pub", ports[0]),
            SubscribeEndpoint = IpcNameOnPort($"ipc://{dir}/{unique}-sub", ports[1]),
            HandshakeTimeout = TimeSpan.FromSeconds(5),
        };
    }

    /// <summary>Hosts a bus on tcp:// or ipc://, either way on ports leased for this test.</summary>
    public static async ValueTask<ZmqEventBus> HostAsync(string busName, bool ipc, CancellationToken cancellationToken = default) =>
        await ZmqEventBus.HostAsync(
            ipc ? await IpcOptionsAsync(busName, cancellationToken) : await TcpOptionsAsync(busName, cancellationToken), cancellationToken);

    /// <summary>
    /// <paramref name="prefix"/> plus a suffix that makes NetMQ put the ipc:// endpoint on <paramref name="port"/>.
    /// </summary>
    /// <remarks>
    /// NetMQ's ipc:// is TCP on 127.0.0.1 at a port hashed from the name, anywhere in 10000-65535: fresh names landed
    /// on ports the registry had just leased to other tests (whose bind then failed with "address in use") and in the
    /// pools of registries. Searching for a name that hashes to a leased port makes the ipc bus a lessee like any
    /// other. About 55,536 names are tried per port on average (a few milliseconds); NetMQ's own resolver decides.
    /// </remarks>
    internal static string IpcNameOnPort(string prefix, int port)
    {
        const string scheme = "ipc://";
        if (!prefix.StartsWith(scheme, StringComparison.Ordinal)) throw new ArgumentException($"'{prefix}' is not an ipc:// endpoint.", nameof(prefix));
        var name = prefix[scheme.Length..];
        for (var suffix = 0; suffix < MaxIpcNameTries; suffix++)
        {
            var candidate = $"{name}-{suffix}";
            if (NetMqIpcPort(candidate) == port) return scheme + candidate;
        }
        throw new InvalidOperationException($"No ipc:// name of the form {prefix}-N maps to port {port} within {MaxIpcNameTries} tries; has NetMQ's ipc:// mapping changed?");
    }

    private const int MaxIpcNameTries = 5_000_000;

    // NetMQ's internal resolver (NetMQ.Core.Transports.Ipc.IpcAddress), so the test follows whatever mapping NetMQ uses.
    private static readonly Func<string, int> NetMqIpcPort = CreateIpcPortResolver();

    private static Func<string, int> CreateIpcPortResolver()
    {
        const string typeName = "NetMQ.Core.Transports.Ipc.IpcAddress";
        var type = typeof(NetMQ.NetMQSocket).Assembly.GetType(typeName)
            ?? throw new InvalidOperationException($"NetMQ no longer has {typeName}; ZmqTestBus cannot map ipc:// names to ports.");
        var resolve = type.GetMethod("Resolve", [typeof(string), typeof(bool)])
            ?? throw new InvalidOperationException($"{typeName}.Resolve(string, bool) is gone.");
        var address = type.GetProperty("Address")
            ?? throw new InvalidOperationException($"{typeName}.Address is gone.");
        var instance = Activator.CreateInstance(type, nonPublic: true)!;
        var arguments = new object[2];
        return name =>
        {
            lock (instance)
            {
                arguments[0] = name;
                arguments[1] = false;
                resolve.Invoke(instance, arguments);
                return ((System.Net.IPEndPoint)address.GetValue(instance)!).Port;
            }
        };
    }

    /// <summary>Joins the bus hosted by <paramref name="host"/> as node <paramref name="nodeId"/>.</summary>
    public static ValueTask<ZmqEventBus> JoinAsync(ZmqEventBus host, string nodeId, CancellationToken cancellationToken = default) =>
        ZmqEventBus.JoinAsync(host.Options with { NodeId = nodeId }, cancellationToken);
}
