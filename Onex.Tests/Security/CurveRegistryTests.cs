using Onex.Errors;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;
using Onex.Transports.Security;

namespace Onex.Tests.Security;

/// <summary>A registry that encrypts with CURVE: who gets answers, and what a client that cannot talk to it is told.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class CurveRegistryTests
{
    private static RegistryClientOptions Quick(TestRegistry registry, string? serverKey) => registry.ClientOptions() with
    {
        ServerKey = serverKey,
        AnnounceNode = false,
        RequestTimeout = TimeSpan.FromMilliseconds(500),
        MaxAttempts = 2,
    };

    [Test]
    public async Task A_client_with_the_server_key_leases_and_watches()
    {
        var keys = CurveKeyPair.Generate();
        await using var registry = await TestRegistry.StartAsync(TestRegistry.Options() with { CurveKeys = keys });
        Assert.That(registry.Host.ServerPublicKey, Is.EqualTo(keys.PublicKey));
        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with
        {
            ServerKey = keys.PublicKey,
            RequestTimeout = TimeSpan.FromSeconds(5), // the first CURVE handshake in a process JIT-compiles the managed cipher
        });
        await using var watch = client.WatchEvents();
        await watch.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot over CURVE");
        await using var leases = await client.LeasePortAsync();
        await watch.UntilAsync(e => e.Change?.NewValue?.Lease?.LeaseId == leases.Leases[0].LeaseId, "the lease's broadcast over CURVE");
    }

    [Test]
    public async Task A_client_without_the_key_is_told_the_registry_encrypts()
    {
        await using var registry = await TestRegistry.StartAsync(TestRegistry.Options() with { CurveKeys = CurveKeyPair.Generate() });
        await using var client = await RegistryClient.ConnectAsync(Quick(registry, serverKey: null));
        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());
        Assert.Multiple(() =>
        {
            Assert.That(ex!.Message, Does.Contain("ONEX_REGISTRY_SERVER_KEY").And.Contain("CURVE"), ex.Message);
            Assert.That(ex.Details["reason"], Is.EqualTo("handshake"));
            Assert.That(ex.Details["curve"], Is.EqualTo("off"));
        });
    }

    [Test]
    public async Task A_client_with_another_key_is_told_the_key_is_not_the_registrys()
    {
        await using var registry = await TestRegistry.StartAsync(TestRegistry.Options() with { CurveKeys = CurveKeyPair.Generate() });
        var wrong = CurveKeyPair.Generate().PublicKey;
        await using var client = await RegistryClient.ConnectAsync(Quick(registry, wrong));
        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());
        Assert.That(ex!.Message, Does.Contain(wrong).And.Contain("is not the registry's"), ex.Message);
        Assert.That(ex.Details["curve"], Is.EqualTo("on"));
    }

    [Test]
    public async Task A_client_with_a_key_against_a_plain_registry_is_told_so()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await RegistryClient.ConnectAsync(Quick(registry, CurveKeyPair.Generate().PublicKey));
        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());
        Assert.That(ex!.Message, Does.Contain("or the registry does not encrypt"), ex.Message);
    }

    [Test]
    public async Task A_registry_that_is_not_running_keeps_the_old_hint()
    {
        // Nothing listens on the proxy's port: connection refused, not a handshake failure.
        await using var ports = await Onex.Testing.OnexTest.LeasePortAsync();
        var options = TestRegistry.ClientOptionsFor($"tcp://127.0.0.1:{ports.Ports[0]}", $"tcp://127.0.0.1:{ports.Ports[0]}") with
        {
            AnnounceNode = false, RequestTimeout = TimeSpan.FromMilliseconds(300), MaxAttempts = 1,
        };
        await using var client = await RegistryClient.ConnectAsync(options);
        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());
        Assert.That(ex!.Message, Does.Contain("is it running?"), ex.Message);
        Assert.That(ex.Details.ContainsKey("reason"), Is.False);
    }

    [Test]
    public void A_malformed_server_key_is_refused_naming_its_source()
    {
        var ex = Assert.Throws<FormatException>(() => RegistryEndpoints.ResolveServerKey("not-a-key"));
        Assert.That(ex!.Message, Does.Contain("RegistryClientOptions.ServerKey").And.Contain("40"));
        var bad = new string('~', CurveKeyPair.Z85Length);
        Assert.That(() => CurveKeyPair.CheckPublicKey(bad, "X"), Throws.TypeOf<FormatException>().With.Message.Contains("alphabet"));
    }

    [Test]
    public async Task The_node_loads_its_key_file_and_warns_when_others_can_read_it()
    {
        var directory = Directory.CreateTempSubdirectory("onex-curve-");
        try
        {
            var path = Path.Combine(directory.FullName, "registry.key");
            var keys = CurveKeyPair.Generate();
            CurveKeyFile.Write(path, keys);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var logs = new CapturingLoggerFactory();
            var options = await TestRegistry.PoolOfItsOwnAsync(TestRegistry.Options() with { CurveKeyFile = path });
            await using var host = await Onex.RegistryNode.Hosting.RegistryNodeHost.StartAsync(options, logs);
            Assert.That(host.ServerPublicKey, Is.EqualTo(keys.PublicKey));
            Assert.That(logs.Entries.Where(e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Select(e => e.Message),
                Has.Some.Contains("chmod 600").And.Some.Contains("0644"));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
