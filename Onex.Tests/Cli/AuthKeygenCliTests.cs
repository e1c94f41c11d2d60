using System.Runtime.Versioning;
using Onex.Cli;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Security;

namespace Onex.Tests.Cli;

/// <summary><c>onex auth keygen</c> and <c>onex --server-key</c> against a registry started with the written key file.</summary>
[SupportedOSPlatform("linux")]
public class AuthKeygenCliTests
{
    [Test]
    public async Task Keygen_writes_a_private_key_file_that_a_registry_serves_with_and_prints_the_key_clients_need()
    {
        using var directory = new TemporaryDirectory();
        var file = Path.Combine(directory.Path, "registry.key");
        var keygen = await Onex.RunAsync("auth", "keygen", "--file", file);
        Assert.That(keygen.ExitCode, Is.EqualTo(ExitCodes.Ok), keygen.ToString());
        var publicKey = keygen.Output.Trim();
        Assert.Multiple(() =>
        {
            Assert.That(publicKey, Has.Length.EqualTo(CurveKeyPair.Z85Length), keygen.ToString());
            Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(File.ReadAllText(file + ".pub"), Does.Contain(publicKey).And.Not.Contain("secret-key"));
        });

        var again = await Onex.RunAsync("auth", "keygen", "--file", file);
        Assert.That(again.ExitCode, Is.EqualTo(ExitCodes.Failed), "an existing key file is kept");
        Assert.That(again.Error, Does.Contain("--force"));

        await using var registry = await TestRegistry.StartAsync(TestRegistry.Options() with { CurveKeyFile = file });
        Assert.That(registry.Host.ServerPublicKey, Is.EqualTo(publicKey), "the node serves with the key pair keygen wrote");
        // A generous timeout: the first CURVE handshake of a process pays for JIT-compiling the managed cipher, which a
        // starved machine stretches past the 2 s the other CLI tests allow.
        var described = await Onex.RunAsync(TimeSpan.FromSeconds(30),
            "--registry", registry.Host.RouterEndpoint, "--registry-pub", registry.Host.PubEndpoint, "--timeout", "20s", "describe", "--json", "--server-key", publicKey);
        Assert.That(described.ExitCode, Is.EqualTo(ExitCodes.Ok), described.ToString());
        var withoutKey = await Onex.RunAsync(Onex.At(registry, "describe"));
        Assert.That(withoutKey.ExitCode, Is.EqualTo(ExitCodes.Unavailable), withoutKey.ToString());
        Assert.That(withoutKey.Error, Does.Contain("ONEX_REGISTRY_SERVER_KEY"));
    }

    [Test]
    public async Task A_malformed_server_key_is_a_usage_error()
    {
        var result = await Onex.RunAsync("describe", "--server-key", "short", "--timeout", "1");
        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
        Assert.That(result.Error, Does.Contain("--server-key"));
    }
}
