using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Transports.Buses;

/// <summary>
/// The ports a registered zmq host binds: the ones its node's earlier run registered for the bus, taken back
/// (<see cref="LeaseRequestOptions.Reclaim"/>), else fresh leases. Taking them back is what lets joined participants
/// carry on without moving: ZeroMQ reconnects them to the same endpoints by itself.
/// </summary>
internal static class HostPorts
{
    /// <summary>
    /// The ports of bus <paramref name="name"/> as this client's node last registered it, reclaimed one by one; null when
    /// the bus is not registered by this node, does not name two tcp endpoints, or a port cannot be taken back (what was
    /// reclaimed is released again then).
    /// </summary>
    public static async ValueTask<IReadOnlyList<PortLeaseSet>?> TryReclaimAsync(RegistryClient registry, string name, CancellationToken cancellationToken)
    {
        var found = await registry.DescribeAsync(new IntrospectionRequest
        {
            Include = [IntrospectionSections.Buses],
            NamePrefix = name,
        }, cancellationToken).ConfigureAwait(false);
        var record = found.Buses?.FirstOrDefault(b => b.Name == name);
        if (record is null || record.NodeId != registry.NodeId || record.Kind != BusKinds.Zmq || record.Endpoints.Count != 2) return null;
        var ports = new List<int>(2);
        foreach (var endpoint in record.Endpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme != "tcp" || uri.Port <= 0) return null;
            ports.Add(uri.Port);
        }

        var reclaimed = new List<PortLeaseSet>(2);
        try
        {
            foreach (var port in ports)
                reclaimed.Add(await registry.LeasePortsAsync(1, new LeaseRequestOptions
                {
                    PreferredPort = port, Reclaim = true, Protocol = PortProtocols.Tcp, Purpose = $"bus {name}",
                }, cancellationToken).ConfigureAwait(false));
            return reclaimed;
        }
        catch (LeaseException)
        {
            // Another node leased one of them meanwhile (or it left the pool): the bus moves to new ports.
            await ReleaseAsync(reclaimed).ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>Two fresh ports for bus <paramref name="name"/>.</summary>
    public static async ValueTask<IReadOnlyList<PortLeaseSet>> LeaseAsync(RegistryClient registry, string name, CancellationToken cancellationToken) =>
        [await registry.LeasePortsAsync(2, new LeaseRequestOptions { Purpose = $"bus {name}", Protocol = PortProtocols.Tcp }, cancellationToken).ConfigureAwait(false)];

    /// <summary>The tcp endpoints of the leased ports, in order.</summary>
    public static IReadOnlyList<string> Endpoints(IReadOnlyList<PortLeaseSet> leases) =>
        leases.SelectMany(set => set.Leases).Select(l => $"tcp://{l.Host}:{l.Port}").ToArray();

    /// <summary>Releases every set (each once; a release that fails is logged by the set).</summary>
    public static async ValueTask ReleaseAsync(IReadOnlyList<PortLeaseSet>? leases)
    {
        if (leases is null) return;
        foreach (var set in leases) await set.DisposeAsync().ConfigureAwait(false);
    }
}
