using Microsoft.Extensions.Configuration;
using Onex.Errors;
using Onex.Extensions.Hosting;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Tests.Cli;
using Onex.Tests.Registry;
using Onex.Transports.Registry;

namespace Onex.Tests.Auth;

/// <summary>
/// A client choosing the tenant its requests act in (PROTOCOL.md 16.3, the envelope key <c>tenant</c>):
/// <see cref="RegistryClientOptions.Tenant"/>, <c>ONEX_TENANT</c> and <c>onex --tenant</c>, against a registry node
/// with an auth file (tenants a and b, an admin in tenant ops).
/// </summary>
public class ClientTenantTests
{
    private static RegistryClientOptions Client(RegistryNodeHost host, string token, string? tenant, string nodeId, bool announce = true) => new()
    {
        Endpoint = host.RouterEndpoint,
        PubEndpoint = host.PubEndpoint,
        Token = token,
        Tenant = tenant,
        NodeId = nodeId,
        AnnounceNode = announce,
        RequestTimeout = TimeSpan.FromSeconds(5),
    };

    [Test]
    public async Task An_admin_client_with_tenant_b_registers_a_bus_that_tenant_b_sees_and_tenant_a_does_not()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using var adminInB = await RegistryClient.ConnectAsync(Client(host, files.Admin, "b", "ops-in-b"));
        await adminInB.RegisterBusAsync("orders-of-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        // The same admin token without a tenant acts in its own tenant (ops): the control case.
        await using var adminInOps = await RegistryClient.ConnectAsync(Client(host, files.Admin, null, "ops-own"));
        await adminInOps.RegisterBusAsync("audit-of-ops", BusKinds.Zmq, ["tcp://127.0.0.1:2"]);

        await using var readerB = await RegistryClient.ConnectAsync(Client(host, files.ReaderB, null, "reader-b", announce: false));
        await using var readerA = await RegistryClient.ConnectAsync(Client(host, files.ReaderA, null, "reader-a", announce: false));
        var seenByB = await readerB.SnapshotAsync();
        var seenByA = await readerA.SnapshotAsync();

        Assert.That(seenByB.Buses.Select(b => (b.Name, b.NodeId, b.Tenant)), Is.EqualTo(new[] { ("orders-of-b", "ops-in-b", "b") }),
            "tenant b sees the bus the admin registered with Tenant = b, and not the one registered in the admin's own tenant");
        Assert.That(seenByB.Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "ops-in-b" }), "the admin's node was announced in tenant b");
        Assert.That(seenByA.Buses, Is.Empty, "tenant a sees none of tenant b's buses");
        Assert.That(seenByA.Nodes, Is.Empty, "tenant a sees none of tenant b's nodes");
        var all = await adminInOps.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses] });
        Assert.That(all.Buses!.Select(b => (b.Name, b.Tenant)), Is.EquivalentTo(new[] { ("orders-of-b", "b"), ("audit-of-ops", "ops") }));
    }

    [Test]
    public async Task A_non_admin_client_naming_another_tenant_is_refused_with_permission_denied()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using var client = await RegistryClient.ConnectAsync(Client(host, files.NodeA, "b", "a-worker", announce: false));

        var refused = Assert.ThrowsAsync<PermissionDeniedException>(async () => await client.SnapshotAsync());
        Assert.That(refused!.Code, Is.EqualTo(ErrorCodes.PermissionDenied));
        Assert.That(refused.Details["reason"], Is.EqualTo("tenant"), "PERMISSION_DENIED names the reason (PROTOCOL.md 16.3)");
        var announcing = Assert.ThrowsAsync<PermissionDeniedException>(async () => await RegistryClient.ConnectAsync(Client(host, files.NodeA, "b", "a-worker-2")));
        Assert.That(announcing!.Details["reason"], Is.EqualTo("tenant"), "announcing in another tenant is refused at connect");

        // Naming its own tenant is allowed.
        await using var own = await RegistryClient.ConnectAsync(Client(host, files.NodeA, "a", "a-worker-3"));
        Assert.That((await own.SnapshotAsync()).Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "a-worker-3" }));
    }

    [Test]
    public void The_tenant_is_bound_from_configuration_like_the_other_settings()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Onex:Endpoint"] = "tcp://127.0.0.1:5750", ["Onex:Tenant"] = " b " })
            .Build();
        var settings = configuration.GetSection("Onex").Get<OnexRegistrySettings>()!;
        Assert.That(settings.ToOptions().Tenant, Is.EqualTo("b"));
        Assert.That(new OnexRegistrySettings().ToOptions().Tenant, Is.Null, "absent: ONEX_TENANT, else none, decided by the client");
    }

    [Test]
    public async Task Onex_tenant_option_and_ONEX_TENANT_select_the_tenant_and_a_bad_name_is_a_usage_error()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        await using (var adminInB = await RegistryClient.ConnectAsync(Client(host, files.Admin, "b", "ops-in-b") with { DepartOnDispose = false }))
            await adminInB.RegisterBusAsync("orders-of-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        string[] registry = ["--registry", host.RouterEndpoint, "--timeout", "5s"];

        var inB = await global::Onex.Tests.Cli.Onex.RunAsync([.. registry, "--token", files.Admin, "--tenant", "b", "describe", "--json"]);
        Assert.That(inB.ExitCode, Is.Zero, inB.ToString());
        Assert.That(inB.Output, Does.Contain("orders-of-b"), "an admin with --tenant b sees tenant b's bus");
        var inA = await global::Onex.Tests.Cli.Onex.RunAsync([.. registry, "--token", files.Admin, "--tenant", "a", "describe", "--json"]);
        Assert.That(inA.ExitCode, Is.Zero, inA.ToString());
        Assert.That(inA.Output, Does.Not.Contain("orders-of-b"), "with --tenant a the admin sees only tenant a");

        var refused = await global::Onex.Tests.Cli.Onex.RunAsync([.. registry, "--token", files.NodeA, "--tenant", "b", "describe"]);
        Assert.That(refused.ExitCode, Is.EqualTo(4), refused.ToString());
        Assert.That(refused.Error, Does.Contain(ErrorCodes.PermissionDenied));

        var bad = await global::Onex.Tests.Cli.Onex.RunAsync([.. registry, "--tenant", "no such/tenant", "describe"]);
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.ToString());
        Assert.That(bad.Error.Trim().Split('\n'), Has.Length.EqualTo(1), $"one line: {bad.Error}");
        Assert.That(bad.Error, Does.Contain("--tenant").And.Not.Contain("   at "));

        // The variables, in a child process: ONEX_TOKEN and ONEX_TENANT.
        var fromEnvironment = await CliUsageErrorTests.RunAsync([.. registry, "describe", "--json"],
            new Dictionary<string, string?> { ["ONEX_TOKEN"] = files.Admin, [RegistryTenant.Variable] = "b" });
        Assert.That(fromEnvironment.ExitCode, Is.Zero, fromEnvironment.ToString());
        Assert.That(fromEnvironment.Output, Does.Contain("orders-of-b"), "ONEX_TENANT=b selects tenant b");
    }
}
