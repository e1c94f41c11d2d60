using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

public class NodeIdFileTests
{
    [Test]
    public void A_missing_file_is_created_with_a_new_id_that_later_reads_return()
    {
        using var directory = new TemporaryDirectory();
        var path = Path.Combine(directory.Path, "state", "node-id");

        var created = NodeIdFile.ReadOrCreate(path);
        var read = NodeIdFile.ReadOrCreate(path);

        Assert.That(File.Exists(path), Is.True, "the id was written");
        Assert.That(read, Is.EqualTo(created), "a restarted process reads the same id");
    }

    [Test]
    public async Task A_client_with_a_node_id_file_announces_the_id_in_it()
    {
        using var directory = new TemporaryDirectory();
        var path = Path.Combine(directory.Path, "node-id");
        await File.WriteAllTextAsync(path, "orders-host-1\n");
        await using var registry = await TestRegistry.StartAsync();

        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with { NodeId = null, NodeIdFile = path });

        Assert.That(client.NodeId, Is.EqualTo("orders-host-1"));
    }

    [TestCase("")]
    [TestCase("  \n")]
    [TestCase("two words")]
    public void A_file_without_a_valid_id_is_refused_naming_the_file(string text)
    {
        using var directory = new TemporaryDirectory();
        var path = Path.Combine(directory.Path, "node-id");
        File.WriteAllText(path, text);

        var ex = Assert.Throws<ArgumentException>(() => NodeIdFile.ReadOrCreate(path));
        Assert.That(ex!.Message, Does.Contain(path));
    }
}
