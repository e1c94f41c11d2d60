using Microsoft.Extensions.Logging.Abstractions;
using Onex.Protocol;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Tests.Client;

/// <summary>
/// A PUB watch whose consumer falls behind holds at most its byte bound of broadcasts: past it the backlog is dropped
/// and the watch resyncs by snapshot, as a token watch stream that fell behind does.
/// </summary>
public class WatchBufferBoundTests
{
    private const int BoundBytes = 8 * 1024;
    private const int Changes = 40;
    private static readonly IReadOnlyDictionary<string, string> Bulk = new Dictionary<string, string> { ["blob"] = new('x', 2_000) };

    /// <summary>Registers <see cref="Changes"/> buses of about 2 KB each; returns the sequence the registry is at afterwards.</summary>
    private static async Task<long> ChangeALotAsync(RegistryClient client)
    {
        for (var i = 0; i < Changes; i++)
            await client.RegisterBusAsync($"bulky-{i}", BusKinds.Zmq, ["tcp://127.0.0.1:1"], Bulk);
        return (await client.SnapshotAsync()).Sequence;
    }

    [Test]
    public async Task A_source_never_buffers_more_than_its_byte_bound_and_replaces_the_backlog_with_one_lost_notice()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var source = new ZmqRegistryBroadcastSource(registry.Host.PubEndpoint, ChangeTypes.TopicPrefix, ZmqSocketOptions.Default,
            capacity: 65_536, changeFilter: null, NullLogger.Instance, maxBytes: BoundBytes);
        using var limit = new CancellationTokenSource(Waits.Default);
        await source.Reader.ReadAsync(limit.Token); // the subscription is live: a registry heartbeat came through

        var final = await ChangeALotAsync(client); // not reading meanwhile: about 80 KB of changes against an 8 KB bound
        long highest = 0;
        var lost = new List<string>();
        var changesRead = 0;
        while (highest < final)
        {
            Assert.That(source.BufferedBytes, Is.LessThanOrEqualTo(BoundBytes), "bytes buffered stay within the bound");
            var broadcast = await source.Reader.ReadAsync(limit.Token);
            if (broadcast.Lost is { } why) lost.Add(why);
            if (broadcast.Change is { } change)
            {
                changesRead++;
                highest = Math.Max(highest, change.Sequence);
            }
            if (broadcast.Heartbeat is { } heartbeat) highest = Math.Max(highest, heartbeat.Sequence);
        }

        Assert.That(lost, Is.Not.Empty, "falling behind past the bound is reported");
        Assert.That(lost[0], Does.Contain($"more than {BoundBytes} bytes"));
        Assert.That(source.Dropped, Is.GreaterThan(0));
        Assert.That(changesRead, Is.LessThan(Changes), "the dropped backlog was not delivered");
    }

    [Test]
    public async Task A_source_full_by_count_replaces_the_backlog_with_one_lost_notice_instead_of_dropping_silently()
    {
        const int capacity = 8;
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        using var source = new ZmqRegistryBroadcastSource(registry.Host.PubEndpoint, ChangeTypes.TopicPrefix, ZmqSocketOptions.Default,
            capacity, changeFilter: null, NullLogger.Instance, maxBytes: 64L * 1024 * 1024);
        using var limit = new CancellationTokenSource(Waits.Default);
        await source.Reader.ReadAsync(limit.Token); // the subscription is live: a registry heartbeat came through

        var final = await ChangeALotAsync(client); // 40 changes against room for 8, far below the byte bound
        long highest = 0;
        var lost = new List<string>();
        var delivered = new List<long>();
        while (highest < final)
        {
            var broadcast = await source.Reader.ReadAsync(limit.Token);
            if (broadcast.Lost is { } why) lost.Add(why);
            if (broadcast.Change is { } change)
            {
                delivered.Add(change.Sequence);
                highest = Math.Max(highest, change.Sequence);
            }
            if (broadcast.Heartbeat is { } heartbeat) highest = Math.Max(highest, heartbeat.Sequence);
        }

        Assert.That(lost, Is.Not.Empty, "a full source says so");
        Assert.That(lost[0], Does.Contain($"more than {capacity} broadcasts"));
        Assert.That(source.Dropped, Is.GreaterThan(0));
        Assert.That(delivered.Count, Is.LessThan(Changes), "the dropped backlog was not delivered");
    }

    [Test]
    public async Task A_watch_that_falls_behind_past_its_byte_bound_resyncs_by_snapshot_and_says_why()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await RegistryClient.ConnectAsync(registry.ClientOptions() with { WatchBufferBytes = BoundBytes });
        await using var events = client.WatchEvents();
        Assert.That(await events.MoveNextAsync().AsTask().Within("the first snapshot"), Is.True);
        Assert.That(events.Current.ResyncReason, Is.EqualTo(RegistryResyncReason.Initial));

        var final = await ChangeALotAsync(client); // the consumer reads nothing meanwhile
        var seen = await events.UntilAsync(e => e.Sequence >= final, "the watch to catch up with the last change");

        var resync = seen.FirstOrDefault(e => e.Kind == RegistryWatchEventKind.Resynced);
        Assert.That(resync, Is.Not.Null, $"a resync after falling behind; saw {string.Join(", ", seen.Select(e => e.Kind))}");
        Assert.That(resync!.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap));
        Assert.That(resync.Detail, Does.Contain($"more than {BoundBytes} bytes"));
        var last = seen.Last(e => e.Kind == RegistryWatchEventKind.Resynced);
        var buses = last.Snapshot!.Buses.Select(b => b.Name).ToHashSet();
        Assert.That(buses, Does.Contain("bulky-0"), "the snapshot covers the changes that were dropped");
    }
}
