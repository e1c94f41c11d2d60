using System.Collections.Concurrent;
using Onex.Bus;
using Onex.Protocol;
using Onex.Testing;
using Onex.Transports.Buses;

[assembly: OnexTestResources]

namespace Onex.Testing.Samples;

/// <summary>What the sample tests acquired, for the outer test to check after the nested run.</summary>
public static class SampleLog
{
    /// <summary>Ports leased, by test full name.</summary>
    public static ConcurrentDictionary<string, IReadOnlyList<int>> Ports { get; } = new();

    /// <summary>Buses created, by test full name: (backend, bus name, what to check is gone: a socket path or a stream name).</summary>
    public static ConcurrentDictionary<string, (string Backend, string Name, string Artifact)> Buses { get; } = new();

    /// <summary>Ports leased by the second test of <see cref="Ordered"/>, with the first test's ports still visible to it.</summary>
    public static ConcurrentQueue<string> Observations { get; } = new();
}

/// <summary>A passing, a failing and a throwing test, each leasing ports.</summary>
public class Leasing
{
    [Test]
    public async Task Passes()
    {
        var leases = await OnexTest.LeasePortsAsync(2);
        SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = leases.Ports;
    }

    [Test]
    public async Task Fails()
    {
        var leases = await OnexTest.LeasePortsAsync(2);
        SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = leases.Ports;
        Assert.Fail("this sample fails on purpose, after leasing");
    }

    [Test]
    public async Task Throws()
    {
        var leases = await OnexTest.LeasePortAsync();
        SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = leases.Ports;
        throw new InvalidOperationException("this sample throws on purpose, after leasing");
    }
}

/// <summary>What <c>[OneTimeSetUp]</c> leases lives for the run.</summary>
public class FixtureScoped
{
    [OneTimeSetUp]
    public async Task LeaseForTheFixture()
    {
        var leases = await OnexTest.LeasePortsAsync(1);
        SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = leases.Ports;
    }

    [Test]
    public void Runs() => Assert.That(SampleLog.Ports.ContainsKey(typeof(FixtureScoped).FullName!), Is.True);
}

/// <summary>Two tests in order: the second sees whether the first one's ports are still leased.</summary>
public class Ordered
{
    [Test, Order(1)]
    public async Task First()
    {
        var leases = await OnexTest.LeasePortsAsync(1);
        SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = leases.Ports;
    }

    [Test, Order(2)]
    public async Task Second()
    {
        var registry = await Registry.OnexTestEnvironment.RegistryAsync();
        var held = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = registry.NodeId });
        var first = $"{typeof(Ordered).FullName}.{nameof(First)}";
        SampleLog.Observations.Enqueue(held.Leases!.Any(l => l.Purpose == first) ? "first still held" : "first released");
    }
}

/// <summary>A failing test per backend, each after creating a bus.</summary>
public class Buses
{
    [TestCase(BusKinds.Memory)]
    [TestCase(BusKinds.Zmq)]
    [TestCase(BusKinds.Ipc)]
    [TestCase(BusKinds.JetStream)]
    public async Task Fails_after_creating_a_bus(string backend)
    {
        var bus = await OnexTest.CreateBusAsync(backend);
        // A memory bus lives in one process and is not registered; the others come wrapped in their registration.
        var inner = bus is RegisteredEventBus wrapped ? wrapped.Inner : bus;
        var artifact = inner switch
        {
            Transports.Ipc.IpcEventBus ipc => ipc.SocketPath,
            Transports.JetStream.JetStreamEventBus jetStream => jetStream.StreamName,
            _ => "",
        };
        SampleLog.Buses[TestContext.CurrentContext.Test.FullName] = (backend, bus.Name, artifact);
        if (bus is RegisteredEventBus { LeasedPorts.Count: > 0 } registered)
            SampleLog.Ports[TestContext.CurrentContext.Test.FullName] = registered.LeasedPorts;
        Assert.Fail($"this sample fails on purpose, after creating a {backend} bus");
    }
}
