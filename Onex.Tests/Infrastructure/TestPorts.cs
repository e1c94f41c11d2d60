using Onex.Testing;

namespace Onex.Tests.Infrastructure;

/// <summary>
/// Where tests get TCP/UDP ports: leases from the test registry (<see cref="OnexTest"/>), recorded with the test's
/// name and released after the test, pass or fail. Never from the kernel, never hard-coded.
/// </summary>
public static class TestPorts
{
    /// <summary>Leases <paramref name="count"/> distinct ports for the calling test (or, from <c>[OneTimeSetUp]</c>, for the run).</summary>
    public static async ValueTask<IReadOnlyList<int>> LeaseAsync(int count = 1, CancellationToken cancellationToken = default)
    {
        var leases = await OnexTest.LeasePortsAsync(count, cancellationToken);
        return leases.Ports;
    }
}
