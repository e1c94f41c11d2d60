using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>The registry node as its own process, started the way an operator would start it.</summary>
public class RegistryProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Test]
    public async Task The_node_process_serves_and_exits_zero_on_sigterm_after_a_stopping_heartbeat()
    {
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString(); // a pool no other test's registry grants from
        using var node = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--heartbeat-interval", "100ms", "--port-range", pool, "--store", "memory");
        try
        {
            var ready = await node.WaitForLineAsync("registry: router", Wait);
            Assert.That(ready, Is.EqualTo($"registry: router {router}"));
            // Every change and heartbeat: a stall of the node on a loaded machine is broadcast as lease.renewed (its
            // deadlines move back), so the last sequence is whatever the last change carried, at least the grant's 1.
            using var subscriber = new TestSubscriber(pub);
            subscriber.WaitForHeartbeat(Wait);
            using var dealer = new TestDealer(router);
            Assert.That(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));

            node.Terminate();

            long lastChange = 0;
            var stopping = subscriber.WaitFor((topic, e) =>
            {
                if (topic != ChangeTypes.HeartbeatTopic)
                {
                    lastChange = Math.Max(lastChange, RegistryCodec.DeserializeBody<RegistryChange>(e.Payload).Sequence);
                    return false;
                }
                return RegistryCodec.DeserializeBody<RegistryHeartbeat>(e.Payload).Stopping;
            }, Wait, "stopping heartbeat");
            var last = RegistryCodec.DeserializeBody<RegistryHeartbeat>(stopping.Payload);
            Assert.That(lastChange, Is.GreaterThanOrEqualTo(1), "the grant's change was not broadcast");
            Assert.That(last.Sequence, Is.EqualTo(lastChange), $"the stopping heartbeat should carry the last sequence; node log:\n{node.Errors}");
            var exitCode = await node.WaitForExitAsync(Wait);
            Assert.That(exitCode, Is.Zero, $"the node did not stop cleanly; stderr:\n{node.Errors}");
        }
        finally
        {
            node.KillIfRunning();
        }
    }

    [Test]
    public async Task A_second_node_process_on_endpoints_in_use_exits_non_zero_naming_the_endpoint()
    {
        var ports = await TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString(); // a pool no other test's registry grants from
        using var first = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--store", "memory");
        try
        {
            await first.WaitForLineAsync("registry: router", Wait);
            using var second = NodeProcess.Start("--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--store", "memory");
            try
            {
                var exitCode = await second.WaitForExitAsync(Wait);
                Assert.That(exitCode, Is.Not.Zero, "a second node started on endpoints in use");
                Assert.That(second.Errors, Does.Contain(router), "the error should name the endpoint in use");
            }
            finally
            {
                second.KillIfRunning();
            }
        }
        finally
        {
            first.Terminate();
            await first.WaitForExitAsync(Wait);
            first.KillIfRunning();
        }
    }
}
