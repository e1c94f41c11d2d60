using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Onex.RegistryNode.Hosting;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Registry;

/// <summary>The registry node as a generic host: configuration sources, embedding, validation at start, the systemd unit.</summary>
public class GenericHostTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Test]
    public async Task The_node_process_reads_appsettings_json_from_its_working_directory()
    {
        using var directory = new TemporaryDirectory();
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "appsettings.json"),
            $$"""{ "Registry": { "Endpoint": "tcp://127.0.0.1:0", "PubEndpoint": "tcp://127.0.0.1:0", "PortRange": "{{pool}}", "Store": "memory" } }""");
        using var node = NodeProcess.Start([], directory.Path, Isolated());
        try
        {
            Assert.That(await node.WaitForLineAsync("registry: store", Wait), Is.EqualTo("registry: store memory"), "Registry:Store from appsettings.json");
            var router = (await node.WaitForLineAsync("registry: router", Wait))["registry: router ".Length..];
            var pub = (await node.WaitForLineAsync("registry: pub", Wait))["registry: pub ".Length..];
            // A cold child process on a busy machine may take seconds to answer its first request.
            await using var client = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(router, pub) with { RequestTimeout = TimeSpan.FromSeconds(5), MaxAttempts = 6 });
            await using var lease = await client.LeasePortsAsync(1);
            var range = Onex.RegistryNode.Leases.PortRange.TryParse(pool, out var r) ? r : throw new AssertionException($"bad pool {pool}");
            Assert.That(lease.Ports[0], Is.InRange(range.First, range.Last), "Registry:PortRange from appsettings.json");
        }
        finally
        {
            node.Terminate();
            await node.WaitForExitAsync(Wait);
        }
    }

    [Test]
    public async Task The_node_reads_its_files_once_and_watches_no_directory()
    {
        // Watching appsettings.json for changes puts an inotify watch on every directory below the working directory
        // (hundreds in a source tree), which slows every start and uses up the user's watches.
        using var directory = new TemporaryDirectory();
        for (var i = 0; i < 20; i++) Directory.CreateDirectory(Path.Combine(directory.Path, $"sub{i}", "deeper"));
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "appsettings.json"),
            $$"""{ "Registry": { "Endpoint": "tcp://127.0.0.1:0", "PubEndpoint": "tcp://127.0.0.1:0", "PortRange": "{{pool}}", "Store": "memory" } }""");
        using var node = NodeProcess.Start([], directory.Path, Isolated());
        try
        {
            await node.WaitForLineAsync("registry: store", Wait);
            var watches = Directory.GetFiles($"/proc/{node.Id}/fdinfo").Sum(InotifyWatches);
            Assert.That(watches, Is.Zero, "inotify watches held by the node");
        }
        finally
        {
            node.Terminate();
            await node.WaitForExitAsync(Wait);
        }

        static int InotifyWatches(string fdInfo)
        {
            try
            {
                return File.ReadLines(fdInfo).Count(line => line.StartsWith("inotify", StringComparison.Ordinal));
            }
            catch (IOException)
            {
                return 0; // the descriptor closed meanwhile
            }
        }
    }

    [Test]
    public async Task The_command_line_beats_the_environment_which_beats_appsettings_json()
    {
        using var directory = new TemporaryDirectory();
        using var data = new TemporaryDirectory();
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        // appsettings.json says a sqlite store in a directory that cannot be created; the environment says memory;
        // the command line names the data directory and the endpoints.
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "appsettings.json"),
            """{ "Registry": { "Store": "sqlite", "Endpoint": "tcp://127.0.0.1:1", "PortRange": "1-2" } }""");
        var environment = Isolated();
        environment["ONEX_REGISTRY_STORE"] = "memory";
        environment["Registry__PortRange"] = pool;
        using var node = NodeProcess.Start(["--endpoint", "tcp://127.0.0.1:0", "--pub-endpoint", "tcp://127.0.0.1:0"], directory.Path, environment);
        try
        {
            Assert.That(await node.WaitForLineAsync("registry: store", Wait), Is.EqualTo("registry: store memory"), "ONEX_REGISTRY_STORE beats appsettings.json");
            Assert.That(await node.WaitForLineAsync("registry: router", Wait), Does.Not.EndWith(":1"), "--endpoint beats appsettings.json");
        }
        finally
        {
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(Wait), Is.Zero, node.Errors);
        }
    }

    [Test]
    public async Task A_bad_value_in_appsettings_json_is_a_usage_error_naming_the_key()
    {
        using var directory = new TemporaryDirectory();
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "appsettings.json"), """{ "Registry": { "DefaultTtl": "soon" } }""");
        using var node = NodeProcess.Start([], directory.Path, Isolated());
        try
        {
            Assert.That(await node.WaitForExitAsync(Wait), Is.EqualTo(2));
            Assert.That(node.Errors, Does.Contain("Registry:DefaultTtl").And.Contain("soon").And.Not.Contain("   at "));
        }
        finally
        {
            node.KillIfRunning();
        }
    }

    [Test]
    public async Task An_embedded_node_starts_and_stops_with_a_generic_host()
    {
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Registry:Endpoint"] = "tcp://127.0.0.1:0",
            ["Registry:PubEndpoint"] = "tcp://127.0.0.1:0",
            ["Registry:PortRange"] = pool,
            ["Registry:Store"] = "memory",
            ["Registry:HeartbeatInterval"] = "100ms",
        });
        builder.Services.AddOnexRegistryNode(builder.Configuration.GetSection(RegistryNodeConfiguration.SectionName));
        using var host = builder.Build();
        await host.StartAsync();
        var service = host.Services.GetRequiredService<RegistryNodeService>();
        var node = await service.Started.WaitAsync(Wait);
        Assert.That(node.Options.HeartbeatInterval, Is.EqualTo(TimeSpan.FromMilliseconds(100)));
        await using (var client = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(node.RouterEndpoint, node.PubEndpoint)))
        {
            await using var lease = await client.LeasePortsAsync(1);
            Assert.That(lease.Ports, Has.Count.EqualTo(1));
        }
        await host.StopAsync();
        Assert.That(service.Node, Is.Null, "the node is stopped with the host");
    }

    [Test]
    public void Inconsistent_options_fail_the_host_at_start_naming_the_problem()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Registry:Endpoint"] = "tcp://127.0.0.1:0",
            ["Registry:PubEndpoint"] = "tcp://127.0.0.1:0",
            ["Registry:Store"] = "memory",
            ["Registry:MinTtl"] = "10s",
            ["Registry:MaxTtl"] = "5s",
        });
        builder.Services.AddOnexRegistryNode(builder.Configuration.GetSection(RegistryNodeConfiguration.SectionName));
        using var host = builder.Build();
        var failure = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(failure!.Message, Does.Contain("Registry:MinTtl").And.Contain("Registry:MaxTtl"), "the message should name the settings that contradict each other");
        Assert.That(host.Services.GetRequiredService<RegistryNodeService>().Node, Is.Null, "no node was started");
    }

    [Test]
    public async Task The_systemd_unit_file_is_hardened_and_passes_systemd_analyze_verify_where_the_tool_exists()
    {
        var unit = Path.Combine(RepositoryRoot(), "deploy", "onex-registry.service");
        var text = await File.ReadAllTextAsync(unit);
        var keys = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#') && l.Contains('='))
            .Select(l => l[..l.IndexOf('=')]).ToHashSet();
        string[] required =
        [
            "Type", "ExecStart", "DynamicUser", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
            "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "RestrictAddressFamilies", "RestrictNamespaces",
            "CapabilityBoundingSet", "SystemCallFilter", "StateDirectory", "KillSignal",
            // Resource limits: what the node can take from the host, whatever its peers send (PROTOCOL.md section 14).
            "MemoryHigh", "MemoryMax", "TasksMax", "LimitNOFILE",
        ];
        Assert.That(required.Where(k => !keys.Contains(k)), Is.Empty, "hardening keys missing from deploy/onex-registry.service");
        Assert.That(text, Does.Contain("Type=notify"), "the node reports readiness through Microsoft.Extensions.Hosting.Systemd");

        var analyze = new[] { "/usr/bin/systemd-analyze", "/bin/systemd-analyze" }.FirstOrDefault(File.Exists);
        if (analyze is null)
        {
            // No systemd here: the keys above are all that can be checked; say so in the output.
            TestContext.Out.WriteLine("systemd-analyze is not installed: checked the unit file's keys only");
            return;
        }
        // verify also checks that ExecStart's program exists: where dotnet is not /usr/bin/dotnet, point it at this one.
        using var directory = new TemporaryDirectory();
        var copy = Path.Combine(directory.Path, "onex-registry.service");
        var dotnet = File.Exists("/usr/bin/dotnet") ? "/usr/bin/dotnet" : DotnetPath();
        await File.WriteAllTextAsync(copy, text.Replace("ExecStart=/usr/bin/dotnet", $"ExecStart={dotnet}", StringComparison.Ordinal));
        var info = new ProcessStartInfo(analyze) { RedirectStandardError = true, RedirectStandardOutput = true };
        info.ArgumentList.Add("verify");
        info.ArgumentList.Add(copy);
        using var process = Process.Start(info)!;
        try
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(Wait);
            var messages = (await stdout + await stderr).Split('\n').Where(l => l.Contains("onex-registry.service", StringComparison.Ordinal)).ToList();
            Assert.That(process.ExitCode, Is.Zero, $"systemd-analyze verify failed:\n{await stderr}");
            Assert.That(messages, Is.Empty, "systemd-analyze verify warned about the unit file");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }

    [Test]
    public void The_node_program_runs_with_GC_conserve_memory_from_its_runtimeconfig()
    {
        // The runtimeconfig beside the tests is the node program's own build output (the test project references it),
        // the file `dotnet onex-registry.dll` reads and `dotnet publish` ships. PROTOCOL.md section 14: without a
        // non-zero ConserveMemory the large-object heap fragments under big remembered replies (288 against 171 MiB peak).
        var path = Path.Combine(AppContext.BaseDirectory, "onex-registry.runtimeconfig.json");
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var properties = json.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.That(properties.TryGetProperty("System.GC.ConserveMemory", out var conserve), Is.True,
            $"{path} has no System.GC.ConserveMemory (Onex.RegistryNode.Service.csproj sets it)");
        Assert.That(conserve.GetInt32(), Is.EqualTo(7), "the node's GC should compact a fragmented large-object heap");
    }

    /// <summary>An environment without the test run's registry variables, so only what a test sets reaches the node.</summary>
    private static Dictionary<string, string?> Isolated() => new()
    {
        ["ONEX_REGISTRY_ENDPOINT"] = null,
        ["ONEX_REGISTRY_PUB_ENDPOINT"] = null,
        ["ONEX_REGISTRY_STORE"] = null,
        ["ONEX_REGISTRY_DATA_DIR"] = null,
        ["ONEX_REGISTRY_DURABILITY"] = null,
    };

    private static string DotnetPath() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : Environment.ProcessPath!;

    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "OnexBus.sln"))) return directory.FullName;
        throw new AssertionException($"no OnexBus.sln above {AppContext.BaseDirectory}");
    }
}
