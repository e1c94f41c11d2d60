using Onex.Diagnostics;
using Onex.Events;
using Onex.InMemory;

namespace Onex.Tests.Diagnostics;

public sealed class BusTelemetryTests
{
    [Test]
    public async Task Topic_tags_stop_growing_after_the_limit_and_fold_the_rest_into_other()
    {
        var busName = "tele-" + Guid.NewGuid().ToString("N")[..12];
        await using var bus = new InMemoryEventBus(InMemoryEventBusOptions.Default with { Name = busName });
        using var metrics = new MeasurementRecorder(OnexBusDiagnostics.Name, "bus", busName);
        const int topics = BusTelemetry.MaxTopicTags + 10;

        for (var i = 0; i < topics; i++)
            await bus.PublishAsync(OnexEvent.Create($"many.t{i}", new byte[1]));

        var tags = metrics.All.Where(m => m.Instrument == "onex.bus.published").Select(m => (string)m.Tags["topic"]!).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(tags, Has.Count.EqualTo(topics), "every publish is counted");
            Assert.That(tags.Distinct().Count(), Is.EqualTo(BusTelemetry.MaxTopicTags + 1), "the limit's topics plus one shared tag");
            Assert.That(tags.Count(t => t == OnexBusDiagnostics.OtherTopics), Is.EqualTo(10), "topics past the limit share the _other tag");
        });
    }

    [Test]
    public async Task Without_a_listener_or_an_ambient_span_the_event_is_delivered_as_published()
    {
        await using var bus = new InMemoryEventBus(InMemoryEventBusOptions.Default with { Name = "tele-" + Guid.NewGuid().ToString("N")[..12] });
        await using var subscription = await bus.SubscribeAsync("plain.>");
        var sent = OnexEvent.Create("plain.event", new byte[] { 1 }, sourceNodeId: "node-a");

        await bus.PublishAsync(sent);

        Assert.That(subscription.Reader.TryRead(out var got), Is.True, "the event was queued synchronously");
        Assert.Multiple(() =>
        {
            Assert.That(got, Is.SameAs(sent), "no copy was made (no trace header to add)");
            Assert.That(got!.Headers, Does.Not.ContainKey(OnexBusDiagnostics.TraceParentHeader));
        });
    }

    [Test]
    public void A_malformed_traceparent_header_gives_no_parent()
    {
        var evt = OnexEvent.Create("bad.trace", default, headers: new Dictionary<string, string> { [OnexBusDiagnostics.TraceParentHeader] = "00-nothex-00-01" });

        Assert.That(OnexBusDiagnostics.TryGetParent(evt, out _), Is.False);
    }
}
