using Onex.Cli;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;

namespace Onex.Tests.Cli;

/// <summary><c>onex registry backup</c>: an online copy of a serving registry's store.</summary>
public class RegistryBackupCliTests
{
    [Test]
    public async Task Backup_of_a_serving_registry_writes_a_store_a_new_registry_starts_from()
    {
        using var data = new TemporaryDirectory();
        using var copy = new TemporaryDirectory();
        var options = await TestRegistry.PoolOfItsOwnAsync(TestNodes.Options(o => o with { Store = RegistryStoreOptions.Default with { DataDirectory = data.Path } }));
        await using var host = await RegistryNodeHost.StartAsync(options);
        using var dealer = new TestDealer(host.RouterEndpoint);
        var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 60_000 }).Leases[0];
        var file = Path.Combine(copy.Path, SqliteRegistryStore.DatabaseFileName);

        var result = await Onex.RunAsync("registry", "backup", file, "--data-dir", data.Path);

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        Assert.That(result.Output, Does.StartWith($"backup: {file} ("));
        await using var restored = await RegistryNodeHost.StartAsync(options with { Store = options.Store with { DataDirectory = copy.Path } });
        using var check = new TestDealer(restored.RouterEndpoint);
        var snapshot = check.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        Assert.That(snapshot.Leases.Select(l => l.LeaseId), Is.EqualTo(new[] { lease.LeaseId }));
    }

    [Test]
    public async Task Backup_onto_an_existing_file_is_refused_and_leaves_it_alone()
    {
        using var data = new TemporaryDirectory();
        var options = await TestRegistry.PoolOfItsOwnAsync(TestNodes.Options(o => o with { Store = RegistryStoreOptions.Default with { DataDirectory = data.Path } }));
        await using var host = await RegistryNodeHost.StartAsync(options);
        var file = Path.Combine(data.Path, "precious.txt");
        await File.WriteAllTextAsync(file, "keep me");

        var result = await Onex.RunAsync("registry", "backup", file, "--data-dir", data.Path);

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Failed), result.ToString());
        Assert.That(result.Error, Does.Contain("exists already"));
        Assert.That(await File.ReadAllTextAsync(file), Is.EqualTo("keep me"));
    }

    [Test]
    public async Task Backup_of_a_directory_without_a_store_names_it()
    {
        using var empty = new TemporaryDirectory();
        var result = await Onex.RunAsync("registry", "backup", Path.Combine(empty.Path, "out.db"), "--data-dir", empty.Path);

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Failed), result.ToString());
        Assert.That(result.Error, Does.Contain("No registry store at").And.Contain(empty.Path));
    }
}
