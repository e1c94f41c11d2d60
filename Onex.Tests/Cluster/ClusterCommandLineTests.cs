using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.Protocol;

namespace Onex.Tests.Cluster;

public class ClusterCommandLineTests
{
    private static RegistryNodeOptions Parse(string[] args, Dictionary<string, string>? environment = null)
    {
        RegistryNodeOptions? options = null;
        var command = RegistryNodeCommandLine.CreateCommand((parse, _) =>
        {
            options = RegistryNodeCommandLine.BuildOptions(parse, name => environment?.GetValueOrDefault(name));
            return Task.FromResult(0);
        });
        Assert.That(command.Parse(args).Invoke(), Is.Zero, $"parsing {string.Join(' ', args)} failed");
        return options!;
    }

    [Test]
    public void Without_cluster_options_the_node_is_not_in_cluster_mode() => Assert.That(Parse([]).Cluster, Is.Null);

    [Test]
    public void Cluster_and_host_name_come_from_options_or_the_environment()
    {
        var fromOptions = Parse(["--cluster", "nats://127.0.0.1:4222,nats://127.0.0.1:4223", "--host-name", "host-a"]);
        Assert.That((fromOptions.Cluster!.Servers, fromOptions.Cluster.HostName), Is.EqualTo(("nats://127.0.0.1:4222,nats://127.0.0.1:4223", "host-a")));
        var fromEnvironment = Parse([], new() { ["ONEX_REGISTRY_CLUSTER"] = "nats://127.0.0.1:4222", ["ONEX_REGISTRY_HOST"] = "host-b" });
        Assert.That((fromEnvironment.Cluster!.Servers, fromEnvironment.Cluster.HostName), Is.EqualTo(("nats://127.0.0.1:4222", "host-b")));
        Assert.That(Parse(["--cluster", "nats://127.0.0.1:4222"]).Cluster!.HostName, Is.EqualTo(Environment.MachineName), "the host name defaults to the machine's");
    }

    [Test]
    public async Task A_cluster_url_that_is_not_nats_exits_with_a_usage_error_naming_the_key()
    {
        var error = new StringWriter();
        var exit = await RegistryNodeCommandLine.RunAsync(["--cluster", "http://127.0.0.1:4222"], new StringWriter(), error, _ => null, CancellationToken.None);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error.ToString(), Does.Contain("Registry:Cluster").And.Contain("nats://HOST:PORT"));
    }

    [TestCase("orders", "orders")]
    [TestCase("billing.charge@1.0.0", "billing_2Echarge_401_2E0_2E0")]
    [TestCase("host_b", "host_5Fb")]
    [TestCase("ü=>", "_C3_BC_3D_3E")]
    public void Key_tokens_are_escaped_into_the_NATS_key_charset_and_back(string text, string token)
    {
        Assert.That(NatsToken.Escape(text), Is.EqualTo(token));
        Assert.That(NatsToken.Unescape(token), Is.EqualTo(text));
        Assert.That(ClusterKeys.Parse(ClusterKeys.Entry(text, "host-a", ClusterKinds.Tool, text)), Is.EqualTo((text, (string?)"host-a", ClusterKinds.Tool, text)));
    }

    [Test]
    public void Claim_keys_cannot_collide_with_a_host()
    {
        Assert.That(ClusterKeys.Parse(ClusterKeys.Claim("default", ClusterKinds.Bus, "orders"))!.Value.Host, Is.Null);
        Assert.That(ClusterKeys.Parse(ClusterKeys.Entry("default", "=claim", ClusterKinds.Bus, "orders"))!.Value.Host, Is.EqualTo("=claim"));
    }

    [Test]
    public async Task Outside_cluster_mode_both_scopes_answer_the_same_and_an_unknown_scope_is_invalid()
    {
        await using var registry = await Onex.Tests.Client.TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync("scope-node");
        await client.RegisterBusAsync("scoped", BusKinds.Memory, []);
        var local = await client.DescribeAsync(new IntrospectionRequest { Scope = IntrospectionScopes.Local, Include = [IntrospectionSections.Buses] });
        var cluster = await client.DescribeAsync(new IntrospectionRequest { Scope = IntrospectionScopes.Cluster, Include = [IntrospectionSections.Buses] });
        Assert.That(cluster.Buses!.Select(b => b.Name), Is.EqualTo(local.Buses!.Select(b => b.Name)).And.Contain("scoped"));
        Assert.That((local.Cluster, local.Buses![0].RegistryHost), Is.EqualTo(((ClusterStatus?)null, (string?)null)), "no cluster, no host names");
        var refused = Assert.CatchAsync<Onex.Errors.OnexException>(async () => await client.DescribeAsync(new IntrospectionRequest { Scope = "galaxy" }));
        Assert.That((refused!.Code, refused.Details["field"]), Is.EqualTo((Onex.Errors.ErrorCodes.InvalidArgument, "scope")));
    }
}
