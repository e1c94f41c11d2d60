using Microsoft.Data.Sqlite;
using Onex.RegistryNode.Storage;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>
/// The SQLite store's checkpoint, driven directly: the rows waiting for it are remembered by key only and their values
/// read back from the journal, so what a reopened store loads must be exactly what was committed, checkpoint or not.
/// </summary>
public class SqliteStoreCheckpointTests
{
    private static StateKey Lease(int i) => new(StoredKind.Lease, $"L-{i}");

    private static byte[] Value(int i, int version) => [(byte)i, (byte)(i >> 8), (byte)version, 7];

    private static SqliteRegistryStore Open(string directory, int checkpointRows)
    {
        var store = SqliteRegistryStore.Open(RegistryStoreOptions.Default with { DataDirectory = directory });
        store.Load();
        store.CheckpointPendingRows = checkpointRows;
        return store;
    }

    private static long Count(string directory, string table)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(directory, SqliteRegistryStore.DatabaseFileName), Mode = SqliteOpenMode.ReadOnly, Pooling = false,
        }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {table}";
        return (long)command.ExecuteScalar()!;
    }

    [Test]
    public void Rows_committed_across_checkpoints_load_back_exactly()
    {
        using var data = new TemporaryDirectory();
        var expected = new Dictionary<StateKey, byte[]>();
        using (var store = Open(data.Path, checkpointRows: 10))
        {
            for (var round = 0; round < 12; round++)
            {
                var writes = new List<StoredWrite>();
                // Grants that are released within a few rounds (born and gone between checkpoints), some rewritten,
                // and some that stay: every kind of history a checkpoint folds.
                for (var i = round * 3; i < round * 3 + 3; i++) writes.Add(new StoredWrite(Lease(i), Value(i, 0)));
                if (round >= 2)
                {
                    var gone = (round - 2) * 3;
                    if (gone % 2 == 0) writes.Add(new StoredWrite(Lease(gone), null));
                    else writes.Add(new StoredWrite(Lease(gone), Value(gone, round)));
                }
                store.Commit(writes, [], 0);
                foreach (var write in writes)
                {
                    if (write.Value is null) expected.Remove(write.Key);
                    else expected[write.Key] = write.Value;
                }
            }
            Assert.That(Count(data.Path, "state"), Is.GreaterThan(0), "no checkpoint ran: the test's threshold did not take");
        }

        using var reopened = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows);
        var loaded = reopened.Load().Rows;
        Assert.That(loaded.Keys, Is.EquivalentTo(expected.Keys), "the rows a reopened store loads differ from the ones committed");
        foreach (var (key, value) in expected) Assert.That(loaded[key], Is.EqualTo(value), $"{key} loaded with another value than committed last");
    }

    [Test]
    public void A_checkpoint_empties_the_journal_and_keeps_no_row_of_an_entity_already_gone()
    {
        using var data = new TemporaryDirectory();
        using (var store = Open(data.Path, checkpointRows: 4))
        {
            store.Commit([new StoredWrite(Lease(1), Value(1, 0)), new StoredWrite(Lease(2), Value(2, 0))], [], 0);
            store.Commit([new StoredWrite(Lease(1), null)], [], 0);
            // One key waits (L-2; L-1 was born and gone), so two more rows stay below the threshold of 4.
            store.Commit([new StoredWrite(Lease(3), Value(3, 0)), new StoredWrite(Lease(4), Value(4, 0))], [], 0);
            Assert.That(Count(data.Path, "journal"), Is.EqualTo(3), "each commit below the threshold is one journal row");
            Assert.That(Count(data.Path, "state"), Is.Zero, "a checkpoint ran before its threshold");
            store.Commit([new StoredWrite(Lease(5), Value(5, 0)), new StoredWrite(Lease(2), null)], [], 0);
            Assert.That(Count(data.Path, "journal"), Is.Zero, "a checkpoint leaves the journal empty");
            Assert.That(Count(data.Path, "state"), Is.EqualTo(3), "the state table holds L-3, L-4 and L-5 only");
            // A row that reached the state table is deleted from it by the next checkpoint.
            store.Commit([new StoredWrite(Lease(3), null)], [], 0);
            store.Commit([new StoredWrite(Lease(6), Value(6, 0)), new StoredWrite(Lease(7), Value(7, 0)), new StoredWrite(Lease(8), Value(8, 0))], [], 0);
            Assert.That(Count(data.Path, "journal"), Is.Zero, "the second checkpoint did not run when expected");
            Assert.That(Count(data.Path, "state"), Is.EqualTo(5), "the state table holds L-4 to L-8 only");
        }
        using var reopened = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows);
        Assert.That(reopened.Load().Rows.Keys, Is.EquivalentTo(new[] { Lease(4), Lease(5), Lease(6), Lease(7), Lease(8) }));
    }

    [Test]
    public void A_checkpoint_reads_the_journal_back_only_as_far_as_the_oldest_row_still_waiting()
    {
        using var data = new TemporaryDirectory();
        const int churn = 40;
        using (var store = Open(data.Path, checkpointRows: 5))
        {
            // Lease churn: each lease granted in one commit and released in the next, so none is waiting at the end.
            store.Commit([new StoredWrite(Lease(0), Value(0, 0))], [], 0);
            for (var i = 1; i < churn; i++) store.Commit([new StoredWrite(Lease(i), Value(i, 0)), new StoredWrite(Lease(i - 1), null)], [], 0);
            // Rows that stay, written by the last two commits; the last one reaches the threshold (1 waiting + 4 changed).
            store.Commit([new StoredWrite(Lease(1000), Value(1000, 0)), new StoredWrite(Lease(churn - 1), null)], [], 0);
            Assert.That(Count(data.Path, "state"), Is.Zero, "a checkpoint ran before its threshold");
            store.Commit([new StoredWrite(Lease(1001), Value(1001, 0)), new StoredWrite(Lease(1000), Value(1000, 1)), new StoredWrite(Lease(1002), Value(1002, 0)), new StoredWrite(Lease(1003), Value(1003, 0))], [], 0);

            Assert.That(Count(data.Path, "journal"), Is.Zero, "the checkpoint did not run when expected");
            Assert.That(store.FoldRecordsRead, Is.EqualTo(1), $"the checkpoint read {store.FoldRecordsRead} of the journal's {churn + 1} records for the one row waiting");
        }
        using var reopened = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows);
        var loaded = reopened.Load().Rows;
        Assert.That(loaded.Keys, Is.EquivalentTo(new[] { Lease(1000), Lease(1001), Lease(1002), Lease(1003) }));
        Assert.That(loaded[Lease(1000)], Is.EqualTo(Value(1000, 1)));
    }

    [Test]
    public void Stored_replies_the_cache_let_go_are_trimmed_and_the_rest_load_back_in_order()
    {
        using var data = new TemporaryDirectory();
        const int commits = SqliteRegistryStore.ReplyTrimEvery + 40;
        const int kept = 10;
        // One reply per commit, stored at time i; the cache keeps the last `kept` of them.
        static StoredReply Reply(int i) => new("client", $"r{i}", "PortRequest", (UInt128)i, [(byte)i, 1], null, i);
        using (var store = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows))
        {
            for (var i = 0; i < commits; i++) store.Commit([], [Reply(i)], oldestReplyKept: Math.Max(0, i - kept));
        }
        // The trim runs on every ReplyTrimEvery-th commit: the one at i = ReplyTrimEvery - 1 deleted every reply older than the cache's oldest then.
        var oldestAtTrim = SqliteRegistryStore.ReplyTrimEvery - 1 - kept;
        Assert.That(Count(data.Path, "replies"), Is.EqualTo(commits - oldestAtTrim), "the trim deleted another range of replies than those the cache had let go");
        using var reopened = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows);
        var replies = reopened.Load().Replies;
        Assert.That(replies.Select(r => r.RequestId), Is.EqualTo(Enumerable.Range(oldestAtTrim, commits - oldestAtTrim).Select(i => $"r{i}")),
            "the replies a reopened store loads are not the ones kept, oldest first");
        // The ids of the loaded rows are remembered too: the next trim of the reopened store deletes by them.
        for (var i = commits; i < commits + SqliteRegistryStore.ReplyTrimEvery; i++) reopened.Commit([], [Reply(i)], oldestReplyKept: i - kept);
        Assert.That(Count(data.Path, "replies"), Is.LessThan(SqliteRegistryStore.ReplyTrimEvery), "a reopened store never trimmed the replies it loaded");
    }

    [Test]
    public async Task The_write_ahead_log_is_copied_back_off_the_writer_s_thread_and_nothing_is_lost()
    {
        using var data = new TemporaryDirectory();
        var expected = new Dictionary<StateKey, byte[]>();
        using (var store = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows))
        {
            Assert.That(store.Checkpointer, Is.Not.Null, "a loaded store runs no checkpointer");
            // Well past the bytes after which the writer wakes the checkpointer.
            var value = new byte[16 * 1024];
            for (var i = 0; i < 3 * WalCheckpointer.WakeAfterBytes / value.Length; i++)
            {
                value[0] = (byte)i;
                var write = new StoredWrite(Lease(i), value.ToArray());
                store.Commit([write], [], 0);
                expected[write.Key] = write.Value!;
            }
            await PeerBoundsTests.WaitUntilAsync(() => store.Checkpointer!.Passes > 0, "a checkpoint pass on the checkpointer's thread");
            Assert.That(store.Checkpointer!.Failures, Is.Zero, "a checkpoint pass failed");
            var (log, copied) = store.Checkpointer.CheckpointNow();
            Assert.That(copied, Is.EqualTo(log), "a pass with the writer idle leaves part of the log uncopied");
        }
        using var reopened = Open(data.Path, SqliteRegistryStore.DefaultCheckpointPendingRows);
        var loaded = reopened.Load().Rows;
        Assert.That(loaded.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (key, value) in expected) Assert.That(loaded[key], Is.EqualTo(value), $"{key} loaded with another value than committed");
    }
}
