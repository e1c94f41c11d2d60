using NATS.Client.Core;
using NATS.Client.JetStream;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;
using Onex.Protocol;
using Onex.Testing.Registry;
using Onex.Testing.Samples;

namespace Onex.Tests.Testing;

/// <summary>
/// What the kit releases after a test, seen from outside: the sample tests (Testing/Samples) run in a nested NUnit
/// run, and these tests look at the registry, the file system and the NATS server afterwards.
/// </summary>
[NonParallelizable] // a nested NUnit run swaps Console.Out and Console.Error for its duration
public class OnexTestResourcesTests
{
    private static ITestResult RunSample(string filterXml)
    {
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        runner.Load(typeof(SampleLog).Assembly, new Dictionary<string, object>());
        return runner.Run(TestListener.NULL, TestFilter.FromXml($"<filter>{filterXml}</filter>"));
    }

    private static ITestResult RunSampleTest(string fullName) => RunSample($"<test>{System.Security.SecurityElement.Escape(fullName)}</test>");

    private static async Task<IReadOnlyList<PortLease>> LeasesHeldAsync()
    {
        var registry = await OnexTestEnvironment.RegistryAsync();
        var state = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = registry.NodeId });
        return state.Leases!;
    }

    private static async Task AssertReleasedAsync(string test)
    {
        Assert.That(SampleLog.Ports.TryGetValue(test, out var ports), Is.True, $"the sample {test} did not lease (did it run?)");
        var held = (await LeasesHeldAsync()).Where(l => ports!.Contains(l.Port) || l.Purpose == test).ToList();
        Assert.That(held, Is.Empty, $"leases of {test} are still held: {string.Join(", ", held.Select(l => $"{l.Port} ({l.Purpose})"))}");
    }

    [Test]
    public async Task Leases_of_a_passing_test_are_released_after_it()
    {
        const string test = "Onex.Testing.Samples.Leasing.Passes";

        var result = RunSampleTest(test);

        Assert.That(result.PassCount, Is.EqualTo(1), result.Message);
        await AssertReleasedAsync(test);
    }

    [Test]
    public async Task Leases_of_a_failing_test_are_released_after_it()
    {
        const string test = "Onex.Testing.Samples.Leasing.Fails";

        var result = RunSampleTest(test);

        Assert.That(result.FailCount, Is.EqualTo(1), "the sample should have failed");
        await AssertReleasedAsync(test);
    }

    [Test]
    public async Task Leases_of_a_test_that_throws_are_released_after_it()
    {
        const string test = "Onex.Testing.Samples.Leasing.Throws";

        var result = RunSampleTest(test);

        Assert.That(result.FailCount, Is.EqualTo(1), "the sample should have thrown");
        await AssertReleasedAsync(test);
    }

    [Test]
    public void Leases_of_a_test_are_released_before_the_next_test_of_its_fixture_starts()
    {
        SampleLog.Observations.Clear();

        var result = RunSample("<class>Onex.Testing.Samples.Ordered</class>");

        Assert.That(result.PassCount, Is.EqualTo(2), result.Message);
        Assert.That(SampleLog.Observations, Is.EqualTo(new[] { "first released" }));
    }

    [Test]
    public async Task Leases_taken_in_OneTimeSetUp_are_held_until_the_end_of_the_run()
    {
        const string fixture = "Onex.Testing.Samples.FixtureScoped";

        var result = RunSample($"<class>{fixture}</class>");

        Assert.That(result.PassCount, Is.EqualTo(1), result.Message);
        var held = await LeasesHeldAsync();
        Assert.That(held.Where(l => l.Purpose == fixture).Select(l => l.Port), Is.EqualTo(SampleLog.Ports[fixture]),
            "a fixture's lease should outlive its tests (it is released when the outer run ends)");
    }

    [TestCase(BusKinds.Memory)]
    [TestCase(BusKinds.Zmq)]
    [TestCase(BusKinds.Ipc)]
    [TestCase(BusKinds.JetStream)]
    public async Task A_bus_made_by_a_failing_test_is_deregistered_and_cleaned_up_after_it(string backend)
    {
        var test = $"Onex.Testing.Samples.Buses.Fails_after_creating_a_bus(\"{backend}\")";

        var result = RunSampleTest(test);

        Assert.That(result.FailCount, Is.EqualTo(1), "the sample should have failed after creating its bus");
        Assert.That(SampleLog.Buses.TryGetValue(test, out var bus), Is.True, "the sample did not create its bus");
        var registry = await OnexTestEnvironment.RegistryAsync();
        var buses = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = bus.Name });
        Assert.That(buses.Buses!.Select(b => b.Name), Does.Not.Contain(bus.Name), "the bus is still registered");
        switch (backend)
        {
            case BusKinds.Zmq:
                await AssertReleasedAsync(test);
                break;
            case BusKinds.Ipc:
                Assert.That(File.Exists(bus.Artifact), Is.False, $"the socket {bus.Artifact} is still there");
                Assert.That(Directory.Exists(Path.GetDirectoryName(Path.GetDirectoryName(bus.Artifact))), Is.False, "the bus's private directory is still there");
                break;
            case BusKinds.JetStream:
                await using (var nats = new NatsConnection(NatsOpts.Default with { Url = await OnexTestEnvironment.NatsUrlAsync() }))
                {
                    var ex = Assert.ThrowsAsync<NatsJSApiException>(async () => await new NatsJSContext(nats).GetStreamAsync(bus.Artifact));
                    Assert.That(ex!.Error.Code, Is.EqualTo(404), $"stream {bus.Artifact} should have been deleted");
                }
                break;
        }
    }
}
