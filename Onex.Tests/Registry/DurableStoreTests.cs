using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>The SQLite store: what a restart keeps, what it refuses to open, and a store that refuses writes.</summary>
public class DurableStoreTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly string Schema = """{"type":"object","properties":{"a":{"type":"integer"}}}""";

    private static async Task<RegistryNodeOptions> OptionsAsync(string dataDir, Func<RegistryStoreOptions, RegistryStoreOptions>? change = null)
    {
        var store = RegistryStoreOptions.Default with { DataDirectory = dataDir };
        return await TestRegistry.PoolOfItsOwnAsync(TestNodes.Options(o => o with { Store = change is null ? store : change(store) }));
    }

    private static RegistrySnapshot Snapshot(RegistryNodeHost host)
    {
        using var dealer = new TestDealer(host.RouterEndpoint);
        return dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
    }

    private static void Populate(TestDealer dealer, string nodeId)
    {
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = nodeId, Name = "billing", HeartbeatIntervalMs = 60_000 });
        dealer.Call<EventBusRegistration, EventBusRecord>(new EventBusRegistration { Name = "orders", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = nodeId });
        dealer.Call<ToolContractRegistration, ToolContractRecord>(new ToolContractRegistration
        {
            Name = "charge", Version = "1.0.0", InputSchema = Schema, OutputSchema = Schema, NodeId = nodeId,
        });
    }

    [Test]
    public async Task A_restart_keeps_leases_nodes_buses_tools_epoch_and_sequence()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        RegistrySnapshot before;
        await using (var first = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(first.RouterEndpoint);
            Populate(dealer, "n1");
            dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = 3, TtlMs = 60_000, Purpose = "web" });
            before = Snapshot(first);
        }

        await using var second = await RegistryNodeHost.StartAsync(options);
        var after = Snapshot(second);

        Assert.That(after.Epoch, Is.EqualTo(before.Epoch), "a restart must keep the epoch, so nobody resyncs");
        Assert.That(after.Sequence, Is.EqualTo(before.Sequence), "a restart must continue the sequence");
        Assert.That(after.Leases, Is.EqualTo(before.Leases), "leases (ids, ports, tokens, expiry) must survive the restart");
        Assert.That(after.Buses.Select(RegistryCodec.SerializeBody), Is.EqualTo(before.Buses.Select(RegistryCodec.SerializeBody)));
        Assert.That(after.Tools.Select(RegistryCodec.SerializeBody), Is.EqualTo(before.Tools.Select(RegistryCodec.SerializeBody)));
        Assert.That(after.Nodes.Select(n => (n.NodeId, n.Name, n.Health)), Is.EqualTo(before.Nodes.Select(n => (n.NodeId, n.Name, n.Health))));
    }

    [Test]
    public async Task Fencing_tokens_and_lease_ids_are_never_issued_twice_across_restarts()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        var tokens = new List<long>();
        var ids = new List<string>();
        for (var round = 0; round < 3; round++)
        {
            await using var host = await RegistryNodeHost.StartAsync(options);
            using var dealer = new TestDealer(host.RouterEndpoint);
            var grant = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = 2, TtlMs = 60_000 });
            tokens.AddRange(grant.Leases.Select(l => l.FencingToken));
            ids.AddRange(grant.Leases.Select(l => l.LeaseId));
        }
        Assert.That(tokens, Is.Unique.And.Ordered, "fencing tokens must keep increasing across restarts");
        Assert.That(ids, Is.Unique);
    }

    [Test]
    public async Task A_retry_after_a_restart_is_answered_from_the_stored_reply_not_run_again()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        const string clientId = "retrying-client";
        var request = new PortRequest { NodeId = "n1", TtlMs = 60_000 };
        byte[] first;
        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint, clientId);
            dealer.Send("req-1", request);
            first = dealer.ReceiveFrame();
        }

        await using var restarted = await RegistryNodeHost.StartAsync(options);
        using var again = new TestDealer(restarted.RouterEndpoint, clientId);
        again.Send("req-1", request);
        var retried = again.ReceiveFrame();

        Assert.That(retried, Is.EqualTo(first), "the retry must get the first reply, byte for byte");
        Assert.That(Snapshot(restarted).Leases, Has.Count.EqualTo(1), "the retry must not create a second lease");
    }

    [Test]
    public async Task A_lease_whose_ttl_passed_while_the_registry_was_down_expires_at_start_and_is_broadcast()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        PortLease lease;
        await using (var host = await RegistryNodeHost.StartAsync(options, timeProvider: time))
        {
            using var dealer = new TestDealer(host.RouterEndpoint);
            lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 5_000 }).Leases[0];
        }
        time.Advance(TimeSpan.FromSeconds(30));

        await using var restarted = await RegistryNodeHost.StartAsync(options, timeProvider: time);
        using var dealer2 = new TestDealer(restarted.RouterEndpoint);
        var renewal = dealer2.Request(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken });

        Assert.That(TestDealer.ExpectError(renewal).Code, Is.EqualTo(ErrorCodes.LeaseExpired));
        Assert.That(Snapshot(restarted).Leases, Is.Empty);
    }

    [Test]
    public async Task A_released_port_stays_in_quarantine_across_a_restart()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        options = options with { Leases = options.Leases with { Quarantine = TimeSpan.FromMinutes(10) } };
        int released;
        await using (var host = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(host.RouterEndpoint);
            var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 60_000 }).Leases[0];
            dealer.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken });
            released = lease.Port;
        }

        await using var restarted = await RegistryNodeHost.StartAsync(options);
        using var dealer2 = new TestDealer(restarted.RouterEndpoint);
        var asked = dealer2.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n2", PreferredPort = released, TtlMs = 60_000 });

        Assert.That(asked.Leases[0].Port, Is.Not.EqualTo(released), "a port resting in quarantine must not be granted after a restart");
    }

    [Test]
    public async Task A_second_registry_on_the_same_data_directory_is_refused_naming_it()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        await using var first = await RegistryNodeHost.StartAsync(options);

        var ex = Assert.ThrowsAsync<RegistryStoreException>(() => RegistryNodeHost.StartAsync(options));
        Assert.That(ex!.Message, Does.Contain(data.Path).And.Contain("in use by another registry"));
    }

    [Test]
    public async Task A_damaged_file_is_refused_naming_it_and_left_untouched()
    {
        using var data = new TemporaryDirectory();
        var file = Path.Combine(data.Path, SqliteRegistryStore.DatabaseFileName);
        var garbage = Enumerable.Range(0, 8192).Select(i => (byte)(i * 31)).ToArray();
        await File.WriteAllBytesAsync(file, garbage);

        var ex = Assert.ThrowsAsync<RegistryStoreException>(async () => await RegistryNodeHost.StartAsync(await OptionsAsync(data.Path)));

        Assert.That(ex!.Message, Does.Contain(file).And.Contain("Nothing was changed"));
        Assert.That(await File.ReadAllBytesAsync(file), Is.EqualTo(garbage), "a refused store must not be touched");
    }

    [Test]
    public async Task A_store_with_damaged_pages_behind_a_good_header_is_refused_naming_it_and_the_endpoints_are_freed()
    {
        using var data = new TemporaryDirectory();
        await using var endpoints = await OnexTest.LeasePortsAsync(2);
        var options = (await OptionsAsync(data.Path)) with
        {
            Endpoint = $"tcp://127.0.0.1:{endpoints.Ports[0]}",
            PubEndpoint = $"tcp://127.0.0.1:{endpoints.Ports[1]}",
        };
        await using (var first = await RegistryNodeHost.StartAsync(options))
        {
            using var dealer = new TestDealer(first.RouterEndpoint);
            Populate(dealer, "n1");
            for (var i = 0; i < 40; i++)
                dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = $"n{i + 2}", Name = "billing", HeartbeatIntervalMs = 60_000 });
            dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = 50, TtlMs = 600_000 });
        }
        var file = Path.Combine(data.Path, SqliteRegistryStore.DatabaseFileName);
        var bytes = await File.ReadAllBytesAsync(file);
        Assert.That(bytes.Length, Is.GreaterThan(4 * 4096), "the store must span several pages for this test");
        // Page 1 (the header and schema) stays intact; every page after it is overwritten.
        for (var i = 4096; i < bytes.Length; i++) bytes[i] = (byte)(i * 31);
        await File.WriteAllBytesAsync(file, bytes);

        var ex = Assert.ThrowsAsync<RegistryStoreException>(async () => await RegistryNodeHost.StartAsync(options));

        Assert.That(ex!.Message, Does.Contain(file).And.Contain("Nothing was changed"));
        Assert.That(await File.ReadAllBytesAsync(file), Is.EqualTo(bytes), "a refused store must not be touched");
        // The failed start let its endpoints go: a node on the same fixed endpoints and a fresh store starts.
        using var fresh = new TemporaryDirectory();
        await using var next = await RegistryNodeHost.StartAsync(options with { Store = options.Store with { DataDirectory = fresh.Path } });
        using var probe = new TestDealer(next.RouterEndpoint);
        Assert.That(probe.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_database_of_another_program_is_refused()
    {
        using var data = new TemporaryDirectory();
        var file = Path.Combine(data.Path, SqliteRegistryStore.DatabaseFileName);
        using (var other = new SqliteConnection($"Data Source={file};Pooling=False"))
        {
            other.Open();
            using var create = other.CreateCommand();
            create.CommandText = "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL)";
            create.ExecuteNonQuery();
        }

        var ex = Assert.ThrowsAsync<RegistryStoreException>(async () => await RegistryNodeHost.StartAsync(await OptionsAsync(data.Path)));

        Assert.That(ex!.Message, Does.Contain(file).And.Contain("another program"));
    }

    [Test]
    public async Task A_store_of_a_newer_format_is_refused()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        await (await RegistryNodeHost.StartAsync(options)).DisposeAsync();
        var file = Path.Combine(data.Path, SqliteRegistryStore.DatabaseFileName);
        using (var connection = new SqliteConnection($"Data Source={file};Pooling=False"))
        {
            connection.Open();
            using var bump = connection.CreateCommand();
            bump.CommandText = $"PRAGMA user_version = {SqliteRegistryStore.FormatVersion + 1}";
            bump.ExecuteNonQuery();
        }

        var ex = Assert.ThrowsAsync<RegistryStoreException>(() => RegistryNodeHost.StartAsync(options));

        Assert.That(ex!.Message, Does.Contain(file).And.Contain("newer OnexBus"));
    }

    [Test]
    public async Task A_full_store_refuses_changes_with_unavailable_storage_keeps_reads_and_recovers_by_itself()
    {
        using var data = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        await using var host = await RegistryNodeHost.StartAsync(options);
        using var dealer = new TestDealer(host.RouterEndpoint);
        Populate(dealer, "n1");
        var held = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 60_000 }).Leases[0];
        var before = Snapshot(host);
        var store = (SqliteRegistryStore)host.Store;
        store.SetMaxSize(new FileInfo(store.Location).Length);

        // Big contracts until the store is full: the first refused one must change nothing.
        Error? refused = null;
        var big = "{\"type\":\"object\",\"description\":\"" + new string('x', 200_000) + "\"}";
        for (var i = 0; i < 50 && refused is null; i++)
        {
            var reply = dealer.Request(new ToolContractRegistration { Name = "big", Version = $"1.0.{i}", InputSchema = big, OutputSchema = Schema, NodeId = "n1" });
            if (reply.MessageType == MessageTypes.NameOf(typeof(Error))) refused = TestDealer.ExpectError(reply);
        }
        Assert.That(refused, Is.Not.Null, "the store never filled up");
        Assert.That(refused!.Code, Is.EqualTo(ErrorCodes.Unavailable));
        Assert.That(refused.Details["reason"], Is.EqualTo("storage"));

        var lease = dealer.Request(new PortRequest { NodeId = "n1", TtlMs = 60_000 });
        Assert.That(TestDealer.ExpectError(lease).Details["reason"], Is.EqualTo("storage"), "changes are refused while the store is full");
        var during = Snapshot(host);
        Assert.That(during.Leases, Is.EqualTo(before.Leases), "reads keep working and show nothing half-applied");
        Assert.That(during.Tools.Select(t => t.Version), Is.SubsetOf(before.Tools.Select(t => t.Version).Concat(Enumerable.Range(0, 50).Select(i => $"1.0.{i}"))));

        store.SetMaxSize(null);
        var recovered = false;
        for (var attempt = 0; attempt < 100 && !recovered; attempt++)
        {
            var reply = dealer.Request(new LeaseRenewal { LeaseId = held.LeaseId, NodeId = "n1", FencingToken = held.FencingToken });
            recovered = reply.MessageType == MessageTypes.NameOf(typeof(PortLease));
            if (!recovered) await Task.Delay(100); // the store's probe runs once a second
        }
        Assert.That(recovered, Is.True, "the registry did not accept changes again after space returned");
    }

    [Test]
    public async Task A_backup_taken_while_serving_starts_a_registry_with_the_same_state_and_a_new_epoch()
    {
        using var data = new TemporaryDirectory();
        using var restored = new TemporaryDirectory();
        var options = await OptionsAsync(data.Path);
        await using var host = await RegistryNodeHost.StartAsync(options);
        using var dealer = new TestDealer(host.RouterEndpoint);
        Populate(dealer, "n1");
        var granted = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = 2, TtlMs = 60_000 }).Leases;
        var live = Snapshot(host);

        SqliteRegistryStore.Backup(data.Path, Path.Combine(restored.Path, SqliteRegistryStore.DatabaseFileName));
        var fromBackup = await RegistryNodeHost.StartAsync(await OptionsAsync(restored.Path) with { Leases = options.Leases });
        await using (fromBackup)
        {
            var copy = Snapshot(fromBackup);
            Assert.That(copy.Leases.Select(l => (l.LeaseId, l.Port, l.FencingToken)), Is.EqualTo(live.Leases.Select(l => (l.LeaseId, l.Port, l.FencingToken))));
            Assert.That(copy.Tools.Select(RegistryCodec.SerializeBody), Is.EqualTo(live.Tools.Select(RegistryCodec.SerializeBody)));
            Assert.That(copy.Epoch, Is.Not.EqualTo(live.Epoch), "a registry started from a backup begins a new epoch, so watchers resync");
            using var copyDealer = new TestDealer(fromBackup.RouterEndpoint);
            var next = copyDealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n2", TtlMs = 60_000 }).Leases[0];
            Assert.That(next.FencingToken, Is.GreaterThan(granted.Max(l => l.FencingToken)), "tokens after a restore never repeat one issued before");
        }
    }
}
