using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// Copies the store's write-ahead log back into the database file on a thread of its own, through a connection of its
/// own, so the registry thread does not: SQLite's passive checkpoint reads the log's pages, writes them into the
/// database file and syncs both (two fsyncs), and run by the writer on commit (SQLite's automatic checkpoint) all of
/// that stalled every request in flight. A passive checkpoint never blocks the writer and the writer never waits for
/// it; SQLite allows it from any connection in WAL mode and keeps the file consistent whatever moment the process dies.
/// </summary>
/// <remarks>
/// The writer keeps SQLite's automatic checkpoint with a higher threshold (<see cref="InlinePages"/>) as a bound: the
/// log restarts from its beginning only when a write begins after everything in it was copied, which a log written
/// without pause may never offer the background pass. When it reaches the bound the writer checkpoints inline, finding
/// most pages already copied, and the log restarts.
/// </remarks>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>The writer wakes the checkpointer after appending about this many bytes (SQLite's own automatic checkpoint runs at 1,000 pages, about 4 MiB).</summary>
    public const long WakeAfterBytes = 1024 * 1024;

    /// <summary>
    /// The log size in pages (8 MiB) at which the writer checkpoints inline (SQLite's automatic checkpoint, kept as the
    /// bound). It also bounds a restart after a kill: opening the store reads the whole log back (measured on the
    /// loaded 2-core machine: 10 ms for 7 MiB, 21 ms for 15 MiB, 46 ms for 31 MiB).
    /// </summary>
    public const int InlinePages = 2000;

    private readonly SqliteConnection _connection;
    private readonly Thread _thread;
    private readonly AutoResetEvent _wake = new(false);
    private volatile bool _stopping;
    private long _appended;
    private long _passes;
    private long _failures;

    private WalCheckpointer(SqliteConnection connection)
    {
        _connection = connection;
        _thread = new Thread(Run) { IsBackground = true, Name = "onex-checkpoint" };
        _thread.Start();
    }

    /// <summary>Checkpoint passes run so far.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Passes that failed (SQLite error other than busy); the writer's inline bound keeps the log from growing anyway.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Opens the checkpointer's own connection to <paramref name="path"/> (already in WAL mode) with the writer's <paramref name="synchronous"/> level.</summary>
    public static WalCheckpointer Start(string path, string synchronous)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        try
        {
            connection.Open();
            using var command = connection.CreateCommand();
            // The checkpoint syncs as its own connection is set: the log before copying, the database after.
            command.CommandText = $"PRAGMA synchronous={synchronous}; PRAGMA cache_size=-64;";
            command.ExecuteNonQuery();
        }
        catch
        {
            connection.Dispose();
            throw;
        }
        return new WalCheckpointer(connection);
    }

    /// <summary>Called by the writer after each commit with the bytes it appended; wakes the checkpointer every <see cref="WakeAfterBytes"/>. Never blocks.</summary>
    public void Appended(long bytes)
    {
        _appended += bytes;
        if (_appended < WakeAfterBytes) return;
        _appended = 0;
        _wake.Set();
    }

    /// <summary>Runs one pass now and waits for it: the log's size in frames and how many of them are in the database file (-1, -1 when it failed).</summary>
    internal (int Log, int Copied) CheckpointNow() => Checkpoint();

    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        _thread.Join();
        _connection.Dispose();
        SqliteConnection.ClearPool(_connection);
        _wake.Dispose();
    }

    private void Run()
    {
        while (true)
        {
            _wake.WaitOne();
            if (_stopping) return;
            Checkpoint();
        }
    }

    private (int Log, int Copied) Checkpoint()
    {
        lock (_connection)
        {
            var rc = raw.sqlite3_wal_checkpoint_v2(_connection.Handle!, null, raw.SQLITE_CHECKPOINT_PASSIVE, out var log, out var copied);
            Interlocked.Increment(ref _passes);
            // Busy: another checkpoint (the writer's inline one) is running; the next pass goes on from where it ends.
            if (rc != raw.SQLITE_OK && rc != raw.SQLITE_BUSY)
            {
                Interlocked.Increment(ref _failures);
                return (-1, -1);
            }
            return (log, copied);
        }
    }
}
