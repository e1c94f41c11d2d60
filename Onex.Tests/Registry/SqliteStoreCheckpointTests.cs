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
}
