using Microsoft.Extensions.Logging.Abstractions;
using Onex.RegistryNode.Auth;

namespace Onex.Tests.Auth;

/// <summary>The auth file: what add-token writes, what the loader refuses and says, and reloading.</summary>
public class AuthFileTests
{
    [Test]
    public void Add_token_stores_only_the_hash_and_the_token_authenticates_as_its_tenant_and_role()
    {
        using var files = new AuthTestFiles();
        var text = File.ReadAllText(files.Path);
        foreach (var token in files.AllTokens)
            Assert.That(text, Does.Not.Contain(token), "the auth file holds a token itself");
        Assert.That(text, Does.Contain(AccessTokens.Hash(files.NodeA)));
        var configuration = AuthConfiguration.Load(files.Path);
        Assert.That(configuration.Authenticate(files.NodeA), Is.EqualTo(new AuthCaller("a", "a-node", AuthRoles.Node)));
        Assert.That(configuration.Authenticate(files.Admin), Is.EqualTo(new AuthCaller("ops", "ops-admin", AuthRoles.Admin)));
        Assert.That(configuration.Authenticate(AccessTokens.Generate()), Is.Null, "an unknown token authenticated");
        Assert.That(configuration.Authenticate(null), Is.Null);
        Assert.That(files.NodeA, Does.StartWith(AccessTokens.Prefix).And.Length.EqualTo(AccessTokens.Prefix.Length + 43));
    }

    [Test]
    public void Add_token_refuses_a_name_already_used_in_the_tenant()
    {
        using var files = new AuthTestFiles();
        var ex = Assert.Throws<AuthFileException>(() => AuthFileEditor.AddToken(files.Path, "a", AuthRoles.Node, "a-node"));
        Assert.That(ex!.Message, Does.Contain("already has a token named 'a-node'"));
    }

    [TestCase("""{"version":1,"tenants":[{"name":"a","tokens":[{"name":"t","role":"owner","hash":"sha256:00"}]}]}""", "tenants[0].tokens[0].role")]
    [TestCase("""{"version":1,"tenants":[{"name":"a","tokens":[{"name":"t","role":"node","hash":"onex_secret"}]}]}""", "tenants[0].tokens[0].hash")]
    [TestCase("""{"version":1,"tenants":[{"name":"a","tokens":[]},{"name":"a","tokens":[]}]}""", "tenants[1].name")]
    [TestCase("""{"version":1,"tenants":[{"name":"a b","tokens":[]}]}""", "tenants[0].name")]
    [TestCase("""{"version":2,"tenants":[]}""", "version")]
    [TestCase("""{"version":1,"tenants":[{"name":"a","quotas":{"leases":-1},"tokens":[]}]}""", "tenants[0].quotas.leases")]
    [TestCase("""{"version":1,"tenants":[{"name":"a","tokens":[]}],"extra":1}""", "not valid JSON for an auth file")]
    [TestCase("""{"version":1,"tenants":[""", "not valid JSON for an auth file")]
    public void A_bad_file_is_refused_naming_the_field(string text, string named)
    {
        var ex = Assert.Throws<AuthFileException>(() => AuthConfiguration.Parse(text, "test.json"));
        Assert.That(ex!.Message, Does.Contain(named).And.Contain("test.json"));
    }

    [Test]
    public void The_same_token_hash_twice_is_refused()
    {
        var hash = AccessTokens.Hash("x");
        var text = $$"""{"version":1,"tenants":[{"name":"a","tokens":[{"name":"t","role":"node","hash":"{{hash}}"}]},{"name":"b","tokens":[{"name":"u","role":"node","hash":"{{hash}}"}]}]}""";
        var ex = Assert.Throws<AuthFileException>(() => AuthConfiguration.Parse(text, "test.json"));
        Assert.That(ex!.Message, Does.Contain("a/t"));
    }

    [Test]
    public async Task A_changed_file_is_picked_up_and_a_bad_one_keeps_the_old_in_force()
    {
        using var files = new AuthTestFiles();
        using var auth = RegistryAuth.Start(files.Path, NullLogger.Instance, handleHangup: false);
        Assert.That(auth.Current.Authenticate(files.NodeA), Is.Not.Null);

        // A new token written by add-token (a rename over the file) is in force without a restart.
        var reloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        auth.Reloaded += ok => { if (ok) reloaded.TrySetResult(); };
        var added = AuthFileEditor.AddToken(files.Path, "c", AuthRoles.Reader, "c-reader");
        await reloaded.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(auth.Current.Authenticate(added), Is.EqualTo(new AuthCaller("c", "c-reader", AuthRoles.Reader)));

        File.WriteAllText(files.Path, "{ not json");
        Assert.That(auth.Reload("test"), Is.False, "a broken file was accepted");
        Assert.That(auth.Current.Authenticate(added), Is.Not.Null, "a broken file dropped the configuration in force");
        Assert.That(auth.Current.Authenticate(files.NodeA), Is.Not.Null);
    }
}

/// <summary><c>contracts/files/AuthFile.schema.json</c> against what the node reads and what add-token writes.</summary>
public class AuthFileSchemaTests
{
    private static async Task<NJsonSchema.JsonSchema> SchemaAsync() =>
        await NJsonSchema.JsonSchema.FromFileAsync(Path.Combine(AppContext.BaseDirectory, "contracts", "files", "AuthFile.schema.json"));

    [Test]
    public async Task A_file_written_by_add_token_satisfies_the_schema()
    {
        using var files = new AuthTestFiles(new TenantQuotas { Leases = 3, RequestsPerSecond = 10 });
        var errors = (await SchemaAsync()).Validate(File.ReadAllText(files.Path));
        Assert.That(errors.Select(e => e.ToString()), Is.Empty);
    }

    [Test]
    public async Task The_schema_examples_are_read_by_the_node()
    {
        var schemaText = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "contracts", "files", "AuthFile.schema.json"));
        using var document = System.Text.Json.JsonDocument.Parse(schemaText);
        var examples = document.RootElement.GetProperty("examples").EnumerateArray().ToList();
        Assert.That(examples, Is.Not.Empty);
        foreach (var example in examples)
        {
            Assert.That((await SchemaAsync()).Validate(example.GetRawText()), Is.Empty, "an example violates its own schema");
            var configuration = AuthConfiguration.Parse(example.GetRawText(), "example");
            Assert.That(configuration.TokenCount, Is.GreaterThan(0));
        }
    }
}
