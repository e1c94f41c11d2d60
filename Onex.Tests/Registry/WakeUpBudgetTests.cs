using System.Text;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>
/// Replies wait for their wake-up's commit; a wake-up stops taking requests after its work budget, so a cheap
/// request is not held back behind a whole batch of expensive ones (RegistryServer.WakeUpWorkBudget).
/// </summary>
public class WakeUpBudgetTests
{
    private const int Registrations = 128;

    [Test]
    public async Task A_cheap_request_is_answered_before_a_pipelined_batch_of_tool_registrations_is_done()
    {
        await using var node = await TestNodes.StartAsync();
        using var flood = new TestDealer(node.RouterEndpoint);
        using var bystander = new TestDealer(node.RouterEndpoint);
        flood.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1", Name = "n1" });
        bystander.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n2", Name = "n2" });

        // Each registration parses two schemas of a few hundred properties: milliseconds of work apiece, so the batch
        // takes far longer than one wake-up's budget on any machine.
        var schema = LargeSchema(properties: 100);
        for (var i = 0; i < Registrations; i++)
            flood.Send(flood.NextRequestId(), ToolContracts.Registration($"bulk.t{i}", inputSchema: schema));
        var firstGrant = bystander.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n2" });

        // What the flood has been answered by now, without waiting. Before the budget, the lease was read among the
        // first messages of a wake-up of up to 256 and its reply left with (nearly) all the registrations' replies.
        var answeredByThen = 0;
        while (flood.TryReceive(TimeSpan.Zero) is not null) answeredByThen++;
        TestContext.Out.WriteLine($"{answeredByThen} of {Registrations} registrations answered when the lease's reply arrived");
        Assert.That(firstGrant.Leases, Has.Count.EqualTo(1));
        Assert.That(answeredByThen, Is.LessThan(Registrations / 2),
            "the lease's reply waited for the batch of registrations read with it");

        for (var i = answeredByThen; i < Registrations; i++)
            Assert.That(flood.Receive().MessageType, Is.EqualTo(nameof(ToolContractRecord)), $"registration {i + 1} of {Registrations}");
    }

    private static string LargeSchema(int properties)
    {
        var text = new StringBuilder("{\"type\":\"object\",\"properties\":{");
        for (var i = 0; i < properties; i++)
            text.Append(i == 0 ? "" : ",").Append("\"p").Append(i).Append("\":{\"type\":\"string\",\"maxLength\":").Append(i + 1).Append('}');
        return text.Append("}}").ToString();
    }
}
