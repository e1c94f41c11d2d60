using System.Net;
using System.Net.Sockets;

namespace Onex.Tests.Infrastructure;

/// <summary>
/// Where tests get TCP ports. Interim implementation: asks the kernel for free ports. It is replaced by
/// leases from the registry (the project's own port leasing) once the registry node lands; callers keep
/// the same API.
/// </summary>
public static class TestPorts
{
    /// <summary>Leases <paramref name="count"/> distinct ports for the calling test.</summary>
    public static ValueTask<IReadOnlyList<int>> LeaseAsync(int count = 1, CancellationToken cancellationToken = default)
    {
        var listeners = new List<TcpListener>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                listeners.Add(listener);
            }
            IReadOnlyList<int> ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
            return ValueTask.FromResult(ports);
        }
        finally
        {
            foreach (var listener in listeners) listener.Stop();
        }
    }
}
