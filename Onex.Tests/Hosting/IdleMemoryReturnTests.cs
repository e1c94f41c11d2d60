using Onex.RegistryNode.Hosting;

namespace Onex.Tests.Hosting;

/// <summary>
/// When the registry program gives memory back (<see cref="IdleMemoryReturn"/>): once, at the first quiet second after
/// a burst of work, never under steady load, and not again until there has been more work.
/// </summary>
public class IdleMemoryReturnTests
{
    private const long Mb = 1024 * 1024;

    private sealed class Allocation
    {
        public long Total;
        public int Returns;
    }

    private static (IdleMemoryReturn Scavenger, Allocation Allocation) Create()
    {
        var allocation = new Allocation();
        var scavenger = new IdleMemoryReturn(() => allocation.Total, () => allocation.Returns++);
        return (scavenger, allocation);
    }

    [Test]
    public void Steady_load_never_triggers_a_return()
    {
        var (scavenger, allocation) = Create();
        for (var second = 0; second < 100; second++)
        {
            allocation.Total += 100 * Mb;
            Assert.That(scavenger.Tick(), Is.False, $"second {second}: returned while the node was busy");
        }
        Assert.That(allocation.Returns, Is.Zero);
    }

    [Test]
    public void The_first_quiet_second_after_a_burst_returns_memory_once()
    {
        var (scavenger, allocation) = Create();
        allocation.Total += IdleMemoryReturn.WorkBytes;
        Assert.That(scavenger.Tick(), Is.False, "busy second");
        allocation.Total += IdleMemoryReturn.QuietBytes / 2;
        Assert.That(scavenger.Tick(), Is.True, "the first quiet second after the burst");
        for (var second = 0; second < 10; second++)
        {
            allocation.Total += IdleMemoryReturn.QuietBytes / 2;
            Assert.That(scavenger.Tick(), Is.False, $"quiet second {second} after the return: returned again with no work since");
        }
        Assert.That(allocation.Returns, Is.EqualTo(1));
        Assert.That(scavenger.Returns, Is.EqualTo(1));
    }

    [Test]
    public void Quiet_after_little_work_returns_nothing()
    {
        var (scavenger, allocation) = Create();
        allocation.Total += IdleMemoryReturn.WorkBytes / 2;
        Assert.That(scavenger.Tick(), Is.False);
        Assert.That(scavenger.Tick(), Is.False, "quiet, but too little work since the start to be worth a full collection");
        allocation.Total += IdleMemoryReturn.WorkBytes / 2;
        Assert.That(scavenger.Tick(), Is.False, "busy second");
        Assert.That(scavenger.Tick(), Is.True, "quiet after a burst that brought the work since the start to the threshold");
        Assert.That(allocation.Returns, Is.EqualTo(1));
    }
}
