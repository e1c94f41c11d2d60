using Onex.Events;

namespace Onex.Tests.Events;

public class EventIdsTests
{
    [Test]
    public void Id_is_a_uuid_v7_in_lowercase_hex_carrying_the_timestamp()
    {
        const long ms = 1_795_500_000_123;
        var id = EventIds.New(ms);

        Assert.That(id, Does.Match("^[0-9a-f]{32}$"));
        var guid = Guid.ParseExact(id, "N");
        Assert.Multiple(() =>
        {
            Assert.That(guid.Version, Is.EqualTo(7), "version nibble");
            Assert.That(guid.Variant, Is.EqualTo(0b1000).Or.EqualTo(0b1001).Or.EqualTo(0b1010).Or.EqualTo(0b1011), "RFC 9562 variant");
            Assert.That(Convert.ToInt64(id[..12], 16), Is.EqualTo(ms), "the first 48 bits are the Unix milliseconds");
        });
    }

    [Test]
    public void Ids_are_unique_and_sort_in_creation_order_within_one_millisecond()
    {
        var ids = Enumerable.Range(0, 100_000).Select(_ => EventIds.New(1_795_500_000_000)).ToList();

        Assert.That(ids.Distinct().Count(), Is.EqualTo(ids.Count), "duplicate event ids");
        Assert.That(ids, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal), "ids of one millisecond must sort in creation order");
    }

    [Test]
    public void Ids_from_concurrent_publishers_are_unique()
    {
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 10_000; i++) ids.Add(EventIds.New(1_795_500_000_000));
        });

        Assert.That(ids.Distinct().Count(), Is.EqualTo(80_000), "duplicate event ids across threads");
    }

    [Test]
    public void Later_millisecond_sorts_after_earlier()
    {
        var earlier = EventIds.New(1_795_500_000_000);
        var later = EventIds.New(1_795_500_000_001);

        Assert.That(string.CompareOrdinal(earlier, later), Is.LessThan(0));
    }
}
