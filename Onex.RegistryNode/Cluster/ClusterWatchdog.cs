namespace Onex.RegistryNode.Cluster;

/// <summary>
/// Decides when the bucket's watch has stalled (docs/CLUSTER.md, "The watch watchdog"): NATS.Net's key-value watcher
/// has been seen to stop delivering without an error, which would leave this registry's view behind for good. Checked
/// every period with the last revision the watch delivered and the bucket's last revision: the watch is stalled when,
/// over a whole period, it delivered nothing although the bucket already held a revision it had not delivered at the
/// start of that period. A revision written just before a check is given the whole next period to arrive, so a slow
/// watch on a busy machine is not mistaken for a stalled one. Not thread-safe: one checker.
/// </summary>
internal sealed class ClusterWatchdog
{
    // The bucket's last revision at the previous check when the watch had not delivered it then; 0: nothing awaited.
    private ulong _awaited;
    private ulong _deliveredAtLastCheck;

    /// <summary>
    /// One periodic check: true when the watch should be re-created from <paramref name="delivered"/> (the last revision
    /// it delivered). After a true the next period starts afresh (the new watch gets a whole period).
    /// </summary>
    public bool Check(ulong delivered, ulong bucketLast)
    {
        var stalled = _awaited != 0 && delivered < _awaited && delivered == _deliveredAtLastCheck;
        _deliveredAtLastCheck = delivered;
        _awaited = stalled || bucketLast <= delivered ? 0 : bucketLast;
        return stalled;
    }
}
