using Onex.Bus;
using Onex.Testing.Buses;
using Onex.Testing.Registry;
using Onex.Testing.Resources;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Testing;

/// <summary>
/// What a test asks the kit for. Everything is tied to the running test and released after it, pass or fail
/// (needs <c>[assembly: OnexTestResources]</c>); called from <c>[OneTimeSetUp]</c>, it lives until the end of the run.
/// </summary>
public static class OnexTest
{
    /// <summary>
    /// Leases <paramref name="count"/> ports (1 to 64) from the test registry, recorded with the test's full name as
    /// purpose. They renew themselves and are released after the test; disposing the set earlier releases them earlier.
    /// </summary>
    /// <exception cref="Errors.LeaseException">The registry has no free ports (PORT_EXHAUSTED).</exception>
    /// <exception cref="InvalidOperationException">The assembly lacks <c>[assembly: OnexTestResources]</c>.</exception>
    public static ValueTask<PortLeaseSet> LeasePortsAsync(int count, CancellationToken cancellationToken = default) =>
        LeasePortsAsync(count, null, cancellationToken);

    /// <summary>
    /// Leases ports as <see cref="LeasePortsAsync(int, CancellationToken)"/> does, with the given options; a null
    /// <see cref="LeaseRequestOptions.Purpose"/> becomes the test's full name, a null TTL the kit's.
    /// </summary>
    public static async ValueTask<PortLeaseSet> LeasePortsAsync(int count, LeaseRequestOptions? options, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var (scope, purpose) = TestResources.Current();
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        options ??= LeaseRequestOptions.Default;
        options = options with
        {
            Purpose = options.Purpose ?? purpose,
            Ttl = options.Ttl ?? OnexTestEnvironment.Options.LeaseTtl,
        };
        var leases = await registry.LeasePortsAsync(count, options, cancellationToken).ConfigureAwait(false);
        return await TestResources.AddAsync(scope, leases).ConfigureAwait(false);
    }

    /// <summary>Leases one port; see <see cref="LeasePortsAsync(int, CancellationToken)"/>.</summary>
    public static ValueTask<PortLeaseSet> LeasePortAsync(CancellationToken cancellationToken = default) =>
        LeasePortsAsync(1, null, cancellationToken);

    /// <summary>
    /// A block of <see cref="OnexTestEnvironment.PrivatePortRange"/> (200 ports) that no other test holds, in this
    /// process or in any other sharing the registry, until the running test ends: the pool for a registry the test starts
    /// itself (restart tests, fake clocks), so the ports it grants cannot collide with those of another test's registry.
    /// Every call in one test (or one fixture's <c>[OneTimeSetUp]</c>) returns the same block.
    /// </summary>
    /// <exception cref="InvalidOperationException">Every block is held by running tests.</exception>
    public static async ValueTask<RegistryNode.Leases.PortRange> ReservePortRangeAsync(CancellationToken cancellationToken = default)
    {
        var (scope, purpose) = TestResources.Current();
        return await scope.RangeFor(purpose, async () =>
        {
            var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
            var (range, claim) = await PortRangeReservations.ClaimAsync(registry, cancellationToken).ConfigureAwait(false);
            await TestResources.AddAsync(scope, claim).ConfigureAwait(false);
            return range;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Disposes <paramref name="resource"/> after the running test (or at the end of the run, from
    /// <c>[OneTimeSetUp]</c>), in reverse order of everything the test handed to the kit. Returns it.
    /// </summary>
    public static async ValueTask<T> DisposeAfterTestAsync<T>(T resource) where T : IAsyncDisposable
    {
        ArgumentNullException.ThrowIfNull(resource);
        var (scope, _) = TestResources.Current();
        return await TestResources.AddAsync(scope, resource).ConfigureAwait(false);
    }

    /// <summary>
    /// Hosts a fresh bus of <paramref name="backend"/> (<c>memory</c>, <c>zmq</c>, <c>ipc</c>, <c>jetstream</c>; see
    /// <see cref="Protocol.BusKinds"/>) under a unique name, registered with the test registry. zmq binds two leased
    /// ports; ipc puts its socket in a private temporary directory; jetstream uses <see cref="OnexTestEnvironment.NatsUrlAsync"/>
    /// and a stream of its own. After the test the bus is deregistered and disposed, its ports released, the socket
    /// directory removed and the stream deleted.
    /// </summary>
    /// <param name="backend">The backend.</param>
    /// <param name="configure">Changes to the options the kit chose (backend settings, a fixed name...), applied last.</param>
    /// <param name="cancellationToken">Cancels the creation.</param>
    /// <returns>The hosting participant (a <see cref="RegisteredEventBus"/>).</returns>
    public static ValueTask<IEventBus> CreateBusAsync(
        string backend, Func<EventBusOptions, EventBusOptions>? configure = null, CancellationToken cancellationToken = default) =>
        TestBuses.CreateAsync(backend, configure, cancellationToken);

    /// <summary>
    /// Joins a bus made by <see cref="CreateBusAsync"/> as another participant, found by name in the registry as another
    /// process would (memory: a participant of the same in-process bus). Disposed after the test, before the host.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="hosted"/> was not made by <see cref="CreateBusAsync"/>.</exception>
    public static ValueTask<IEventBus> JoinBusAsync(
        IEventBus hosted, Func<EventBusOptions, EventBusOptions>? configure = null, CancellationToken cancellationToken = default) =>
        TestBuses.JoinAsync(hosted, configure, cancellationToken);
}
