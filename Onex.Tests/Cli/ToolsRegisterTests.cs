using System.Text.Json;
using Onex.Cli;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary><c>onex tools register FILE</c>: the sample contract registered by a real child process and held while it runs.</summary>
public class ToolsRegisterTests
{
    private static readonly TimeSpan ChildProcessLimit = TimeSpan.FromSeconds(30);

    private static string Sample => Path.Combine(AppContext.BaseDirectory, "samples", "tools", "greet.tool.json");

    [Test]
    public async Task The_sample_contract_is_registered_held_and_validates_payloads_until_the_command_ends()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        await using var onex = OnexProcess.Start(Onex.At(registry, "tools", "register", Sample, "--json"));
        var record = await onex.ReadJsonLineAsync("the registered contract", ChildProcessLimit);
        Assert.That((record.GetProperty("name").GetString(), record.GetProperty("version").GetString()), Is.EqualTo(("greet", "1.0.0")));

        var valid = await observer.ValidatePayloadAsync("greet", """{"name":"Ada"}""", PayloadDirections.Input);
        var invalid = await observer.ValidatePayloadAsync("greet", """{"name":5}""", PayloadDirections.Input);
        Assert.That((valid.Valid, invalid.Valid), Is.EqualTo((true, false)), "the registered input schema is the sample's");

        onex.CloseInput();
        Assert.That(await onex.WaitForExitAsync(ChildProcessLimit), Is.EqualTo(ExitCodes.Ok), await onex.StandardErrorAsync());
    }

    [TestCase("""{"name":"greet","version":"1.0","inputSchema":{},"outputSchema":{}}""", "semantic version")]
    [TestCase("""{"name":"greet","version":"1.0.0","outputSchema":{}}""", "inputSchema")]
    [TestCase("""{"name":"bad name","version":"1.0.0","inputSchema":{},"outputSchema":{}}""", "bad name")]
    [TestCase("""{"name":"greet","version":"1.0.0","inputSchema":{},"outputSchema":{},"errorCodes":[{"code":"A"},{"code":"A"}]}""", "twice")]
    [TestCase("""{"name":""", "not JSON")]
    public async Task A_malformed_contract_file_is_a_usage_error_naming_the_field(string contents, string expected)
    {
        var file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"tool-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, contents);
        try
        {
            // No registry is contacted: the file is checked first.
            var result = await Onex.RunAsync("--registry", "tcp://127.0.0.1:1", "tools", "register", file);
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Usage), result.ToString());
            Assert.That(result.Error.Trim().Split('\n'), Has.Length.EqualTo(1), result.ToString());
            Assert.That(result.Error, Does.Contain(expected), result.ToString());
        }
        finally
        {
            File.Delete(file);
        }
    }
}
