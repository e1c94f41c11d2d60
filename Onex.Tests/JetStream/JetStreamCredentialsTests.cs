using NATS.NKeys;
using Onex.Errors;
using Onex.Events;
using Onex.Testing.Nats;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;

namespace Onex.Tests.JetStream;

/// <summary>
/// The JetStream bus against a nats-server that requires authorization (started by the test kit with its own store
/// directory and leased port, stopped by pid): the right credentials carry events, wrong or missing ones fail at
/// connect with a message that says the server refused them.
/// </summary>
public class JetStreamCredentialsTests
{
    private static JetStreamEventBusOptions Options(NatsTestServer server, NatsCredentials credentials) => JetStreamEventBusOptions.Default with
    {
        Url = server.Url,
        Name = JetStreamTesting.UniqueBusName("auth"),
        NodeId = "test",
        DeleteStreamOnDispose = true,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        Credentials = credentials,
    };

    private static async Task AssertCarriesEventsAsync(NatsTestServer server, NatsCredentials credentials)
    {
        await using var bus = await JetStreamEventBus.ConnectAsync(Options(server, credentials));
        await using var subscription = await bus.SubscribeAsync("auth.>");
        await bus.PublishAsync(OnexEvent.Create("auth.check", "x"u8.ToArray()));
        var received = await subscription.Reader.ReadAsync().AsTask().WaitAsync(JetStreamTesting.WaitLimit);
        Assert.That(received.Topic, Is.EqualTo("auth.check"), $"an event with {credentials}");
    }

    private static void AssertRefused(NatsTestServer server, NatsCredentials credentials)
    {
        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await JetStreamEventBus.ConnectAsync(Options(server, credentials)));
        Assert.That(ex!.Message, Does.Contain("refused the credentials").And.Contain(server.Url), $"connecting with {credentials}");
    }

    [Test]
    public async Task User_and_password_work_and_wrong_ones_are_refused()
    {
        var password = Guid.NewGuid().ToString("N");
        var server = await NatsTestServer.StartWithConfigurationAsync($"authorization {{ user: onex, password: \"{password}\" }}");
        await AssertCarriesEventsAsync(server, NatsCredentials.UserPassword("onex", password));
        AssertRefused(server, NatsCredentials.UserPassword("onex", "wrong"));
        AssertRefused(server, NatsCredentials.None);
    }

    [Test]
    public async Task A_token_works_and_a_wrong_one_is_refused()
    {
        var token = Guid.NewGuid().ToString("N");
        var server = await NatsTestServer.StartWithConfigurationAsync($"authorization {{ token: \"{token}\" }}");
        await AssertCarriesEventsAsync(server, new NatsCredentials { Token = token });
        AssertRefused(server, new NatsCredentials { Token = "not-" + token });
    }

    [Test]
    public async Task An_nkey_seed_file_works_and_another_key_is_refused()
    {
        using var user = KeyPair.CreatePair(PrefixByte.User);
        using var stranger = KeyPair.CreatePair(PrefixByte.User);
        var directory = Directory.CreateTempSubdirectory("onex-nkeys-");
        try
        {
            var seedFile = Path.Combine(directory.FullName, "user.nk");
            var strangerFile = Path.Combine(directory.FullName, "stranger.nk");
            await File.WriteAllTextAsync(seedFile, user.GetSeed());
            await File.WriteAllTextAsync(strangerFile, stranger.GetSeed());
            var server = await NatsTestServer.StartWithConfigurationAsync($"authorization {{ users: [ {{ nkey: {user.GetPublicKey()} }} ] }}");
            await AssertCarriesEventsAsync(server, new NatsCredentials { NKeySeedFile = seedFile });
            AssertRefused(server, new NatsCredentials { NKeySeedFile = strangerFile });
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Test]
    public void Two_kinds_of_credentials_at_once_are_a_usage_error()
    {
        var options = JetStreamEventBusOptions.Default with { Credentials = new NatsCredentials { Token = "t", Username = "u", Password = "p" } };
        Assert.That(options.Validate, Throws.ArgumentException.With.Message.Contains("one kind"));
        Assert.That(new NatsCredentials { Token = "secret-token" }.ToString(), Does.Not.Contain("secret-token"));
    }
}
