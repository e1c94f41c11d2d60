using Onex.RegistryNode.Cluster;

namespace Onex.Tests.Cluster;

/// <summary>
/// The decision of the bucket watch's watchdog, check by check: a watch is re-created only when it delivered nothing
/// over a whole check period although the bucket held, at the start of that period, a revision it had not delivered.
/// </summary>
public class ClusterWatchdogTests
{
    [Test]
    public void A_watch_that_delivers_nothing_while_the_bucket_moves_on_is_stalled_at_the_second_check()
    {
        var watchdog = new ClusterWatchdog();
        Assert.That(watchdog.Check(delivered: 10, bucketLast: 12), Is.False, "revisions 11 and 12 may still be on their way");
        Assert.That(watchdog.Check(delivered: 10, bucketLast: 14), Is.True, "a whole period later nothing came: stalled");
    }

    [Test]
    public void A_watch_that_delivers_something_in_the_period_is_not_stalled_even_if_still_behind()
    {
        var watchdog = new ClusterWatchdog();
        Assert.That(watchdog.Check(10, 20), Is.False);
        Assert.That(watchdog.Check(15, 30), Is.False, "it moved: slow, not stalled");
        Assert.That(watchdog.Check(30, 30), Is.False, "caught up");
    }

    [Test]
    public void A_quiet_bucket_never_makes_a_quiet_watch_stalled()
    {
        var watchdog = new ClusterWatchdog();
        for (var i = 0; i < 5; i++) Assert.That(watchdog.Check(7, 7), Is.False, $"check {i}: nothing to deliver");
    }

    [Test]
    public void A_revision_written_just_before_a_check_gets_the_next_period_to_arrive()
    {
        var watchdog = new ClusterWatchdog();
        Assert.That(watchdog.Check(7, 7), Is.False);
        Assert.That(watchdog.Check(7, 8), Is.False, "8 was written during the period: not yet awaited");
        Assert.That(watchdog.Check(8, 9), Is.False, "8 arrived");
        Assert.That(watchdog.Check(8, 9), Is.True, "9 did not, over a whole period");
    }

    [Test]
    public void After_a_restart_the_new_watch_gets_a_whole_period_before_it_can_be_judged_again()
    {
        var watchdog = new ClusterWatchdog();
        watchdog.Check(0, 5);
        Assert.That(watchdog.Check(0, 5), Is.True, "stalled before delivering anything (a load that never started)");
        Assert.That(watchdog.Check(0, 5), Is.False, "the re-created watch is not judged at its first check");
        Assert.That(watchdog.Check(0, 5), Is.True, "but is at the next if it delivers nothing either");
    }
}
