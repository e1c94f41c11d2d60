using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.InMemory;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Buses;
using Onex.Transports.Ipc;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Tests.Buses;

public class EventBusFactoryTests
{
    private static async Task<OnexEvent> RoundTripAsync(IEventBus publisher, IEventBus subscriber)
    {
        await using var subscription = await subscriber.SubscribeAsync("factory.>");
        await publisher.PublishAsync("factory.check", "x"u8.ToArray());
        return await subscription.Reader.ReadAsync().AsTask().Within("the event published through the factory-made bus");
    }

    private static async Task<IntrospectionResponse> BusesAsync(RegistryClient client) =>
        await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses, IntrospectionSections.Leases] });

    [Test]
    public void Unknown_backend_is_an_error_that_names_it_and_the_choices()
    {
        var ex = Assert.ThrowsAsync<ArgumentException>(async () =>
            await EventBusFactory.CreateAsync(EventBusOptions.Default with { Backend = "kafka" }));
        Assert.That(ex!.Message, Does.Contain("'kafka'").And.Contain("memory, zmq, ipc, jetstream"));
    }

    [Test]
    public void Joining_a_memory_bus_is_refused_rather_than_silently_creating_one()
    {
        var ex = Assert.ThrowsAsync<ArgumentException>(async () =>
            await EventBusFactory.CreateAsync(EventBusOptions.Default with { Role = EventBusRole.Join }));
        Assert.That(ex!.Message, Does.Contain("memory"));
    }

    [Test]
    public async Task Memory_backend_is_an_in_memory_bus()
    {
        await using var bus = await EventBusFactory.CreateAsync(EventBusOptions.Default with { Name = "factory-mem" });

        Assert.That(bus, Is.InstanceOf<InMemoryEventBus>());
        Assert.That((await RoundTripAsync(bus, bus)).Topic, Is.EqualTo("factory.check"));
    }

    [Test]
    public async Task Unreachable_jetstream_server_fails_naming_the_backend_and_url_without_falling_back()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        var url = $"nats://127.0.0.1:{port}";
        var options = EventBusOptions.Default with
        {
            Backend = BusKinds.JetStream,
            NatsUrl = url,
            JetStream = EventBusOptions.Default.JetStream with { ConnectTimeout = TimeSpan.FromSeconds(1) },
        };

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await EventBusFactory.CreateAsync(options));
        Assert.That(ex!.Message, Does.Contain(url));
    }

    [Test]
    public async Task Hosted_zmq_bus_takes_its_ports_from_the_registry_and_registers_itself()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        await using var bus = await EventBusFactory.CreateAsync(EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = "factory-zmq", Registry = client,
        });

        var registered = (RegisteredEventBus)bus;
        var state = await BusesAsync(client);
        var record = state.Buses!.Single(b => b.Name == "factory-zmq");
        Assert.Multiple(() =>
        {
            Assert.That(record.Kind, Is.EqualTo(BusKinds.Zmq));
            Assert.That(record.NodeId, Is.EqualTo(client.NodeId));
            Assert.That(record.Endpoints, Is.EqualTo(registered.LeasedPorts.Select(p => $"tcp://127.0.0.1:{p}")),
                "the bus should listen on the ports the registry leased");
            Assert.That(state.Leases!.Select(l => l.Port), Is.SupersetOf(registered.LeasedPorts));
        });
        Assert.That((await RoundTripAsync(bus, bus)).Topic, Is.EqualTo("factory.check"));
    }

    [Test]
    public async Task Disposing_a_registered_bus_deregisters_it_and_releases_its_ports()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var bus = await EventBusFactory.CreateAsync(EventBusOptions.Default with { Backend = BusKinds.Zmq, Name = "factory-gone", Registry = client });
        var ports = ((RegisteredEventBus)bus).LeasedPorts;

        await bus.DisposeAsync();

        var state = await BusesAsync(client);
        Assert.That(state.Buses!.Select(b => b.Name), Does.Not.Contain("factory-gone"));
        Assert.That(state.Leases!.Select(l => l.Port), Has.None.AnyOf(ports.Cast<object>().ToArray()), "the bus's ports should be released");
    }

    [Test]
    public async Task A_participant_joins_a_registered_bus_by_name()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var hostClient = await registry.ConnectAsync();
        await using var joinClient = await registry.ConnectAsync();
        await using var host = await EventBusFactory.CreateAsync(EventBusOptions.Default with { Backend = BusKinds.Zmq, Name = "factory-join", Registry = hostClient });

        await using var joined = await EventBusFactory.CreateAsync(EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = "factory-join", Role = EventBusRole.Join, Registry = joinClient,
        });

        Assert.That(joined, Is.InstanceOf<ZmqEventBus>(), "a joining participant does not register the bus again");
        Assert.That((await RoundTripAsync(joined, host)).Topic, Is.EqualTo("factory.check"));
    }

    [Test]
    public async Task Joining_an_unknown_bus_by_name_is_not_found()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();

        var ex = Assert.ThrowsAsync<NotFoundException>(async () => await EventBusFactory.CreateAsync(EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = "nobody-hosts-this", Role = EventBusRole.Join, Registry = client,
        }));
        Assert.That(ex!.Message, Does.Contain("nobody-hosts-this"));
    }

    [Test]
    public async Task Hosted_ipc_bus_registers_its_unix_socket_endpoint()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var root = Path.Combine(Path.GetTempPath(), "onex-factory-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            await using var bus = await EventBusFactory.CreateAsync(EventBusOptions.Default with
            {
                Backend = BusKinds.Ipc, Name = "factory-ipc", Registry = client,
                Ipc = IpcEventBusOptions.Default with { RootDirectory = root },
            });

            var record = (await BusesAsync(client)).Buses!.Single(b => b.Name == "factory-ipc");
            Assert.That(record.Endpoints, Is.EqualTo(new[] { ((IpcEventBus)((RegisteredEventBus)bus).Inner).Endpoint }));
            Assert.That(record.Endpoints[0], Does.StartWith("unix://"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}

[NonParallelizable] // environment variables are process-wide
public class EventBusOptionsEnvironmentTests
{
    private static readonly string[] Variables = ["ONEX_BUS", "ONEX_BUS_NAME", "ONEX_BUS_ROLE", "ONEX_BUS_ENDPOINTS", "ONEX_ZMQ_TRANSPORT", "ONEX_NATS_URL"];
    private Dictionary<string, string?> _saved = [];

    [SetUp]
    public void Save() => _saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);

    [TearDown]
    public void Restore()
    {
        foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
    }

    [Test]
    public void Environment_variables_choose_backend_name_role_and_endpoints()
    {
        Environment.SetEnvironmentVariable("ONEX_BUS", "ZMQ");
        Environment.SetEnvironmentVariable("ONEX_BUS_NAME", "orders");
        Environment.SetEnvironmentVariable("ONEX_BUS_ROLE", "join");
        Environment.SetEnvironmentVariable("ONEX_BUS_ENDPOINTS", "tcp://127.0.0.1:1, tcp://127.0.0.1:2");

        var options = EventBusOptions.FromEnvironment();

        Assert.Multiple(() =>
        {
            Assert.That(options.Backend, Is.EqualTo("zmq"));
            Assert.That(options.Name, Is.EqualTo("orders"));
            Assert.That(options.Role, Is.EqualTo(EventBusRole.Join));
            Assert.That(options.Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2" }));
        });
    }

    [Test]
    public void An_unknown_role_in_the_environment_is_an_error_naming_the_variable()
    {
        Environment.SetEnvironmentVariable("ONEX_BUS_ROLE", "leader");

        Assert.That(() => EventBusOptions.FromEnvironment(), Throws.ArgumentException.With.Message.Contains("ONEX_BUS_ROLE"));
    }

    [Test]
    public async Task Two_nodes_each_create_the_default_memory_bus_with_a_registry_without_a_conflict()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var first = await registry.ConnectAsync();
        await using var second = await registry.ConnectAsync();
        await using var one = await EventBusFactory.CreateAsync(EventBusOptions.Default with { Registry = first });
        await using var two = await EventBusFactory.CreateAsync(EventBusOptions.Default with { Registry = second });
        Assert.That((one.Name, two.Name), Is.EqualTo(("default", "default")));
        var answer = await first.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses] });
        Assert.That(answer.Buses, Is.Empty, "a memory bus is process-local and is not registered");
    }
}
