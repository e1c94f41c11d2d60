using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>Replies over the 1 MiB request limit reach the client (PROTOCOL.md 2.3: clients accept up to 64 MiB).</summary>
public class LargeReplyTests
{
    [Test]
    public async Task An_introspection_reply_over_one_mebibyte_is_received_not_dropped()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        // Six tools whose schemas carry 300 KB descriptions: each registration is under the 1 MiB request limit, the
        // introspection listing all of them is about 3.6 MB (input and output schema each).
        var schema = $$"""{"type":"object","description":"{{new string('d', 300_000)}}"}""";
        for (var i = 0; i < 6; i++) await client.RegisterToolAsync($"big{i}", "1.0.0", schema, schema);

        var state = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Tools] });

        Assert.That(state.Tools!.Select(t => t.Name), Is.EquivalentTo(Enumerable.Range(0, 6).Select(i => $"big{i}")));
        Assert.That(state.Tools!.Sum(t => t.InputSchema.Length + t.OutputSchema.Length), Is.GreaterThan(RegistryCodec.MaxFrameBytes * 3));
    }
}
