using System.Buffers;
using MessagePack;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// The registry's state in an embedded SQLite database (WAL mode) in its data directory. Each commit appends the
/// changed rows as one journal record (one row insert however many requests the wake-up handled); a checkpoint
/// folds the journal into the <c>state</c> table when it grows, so a start reads the state table and replays a short
/// journal. Rows of entities born and gone between checkpoints never reach the state table. Kept replies are stored
/// per commit in <c>replies</c> and dropped once the in-memory cache has let them go.
/// </summary>
/// <remarks>
/// Per wake-up a commit runs four statements (BEGIN, one <c>journal</c> row, one <c>replies</c> row, COMMIT), kept
/// prepared as SQLite statements and bound straight from one reused encoding buffer: no command, reader or blob copy
/// is made per commit, and the registry writes each changed row's value into that buffer (<see cref="IStoredRows"/>)
/// instead of handing over an array per row. The rows waiting for a checkpoint are remembered by key only; a checkpoint reads their values
/// back from the journal, so the memory between checkpoints is not a second copy of everything written.
/// </remarks>
/// <remarks>
/// Durability: <see cref="StoreDurability.Process"/> runs with <c>synchronous=NORMAL</c> (a commit is in the OS when it
/// returns, so a killed process loses nothing; the file stays consistent on power loss but may lose the last commits);
/// <see cref="StoreDurability.Power"/> with <c>synchronous=FULL</c> (each commit is fsynced).
/// </remarks>
internal sealed class SqliteRegistryStore : IRegistryStore
{
    /// <summary>The database's file name inside the data directory.</summary>
    public const string DatabaseFileName = "registry.db";

    /// <summary>The lock file that keeps a second registry off the same data directory.</summary>
    public const string LockFileName = "registry.lock";

    /// <summary>
    /// The on-disk format this build writes (<c>PRAGMA user_version</c>); it reads this one and every older one.
    /// 2: lease rows in <see cref="LeaseRow"/>'s compact form (1: the wire form). 3: kept replies in
    /// <see cref="StoredReplies"/>' lean form (2: each reply with its request body and whole envelope). An older store
    /// is marked with this version when opened, since it is written in the new form from then on and an older build
    /// must not misread it; its rows in the older forms are still read.
    /// </summary>
    public const int FormatVersion = 3;

    /// <summary><c>PRAGMA application_id</c> of a registry store: "ONXB".</summary>
    public const int ApplicationId = 0x4F4E5842;

    // A checkpoint runs when the journal holds this many bytes or the rows waiting for it reach this count: bounds
    // both the start time (journal replay) and the memory the pending rows take.
    private const long CheckpointJournalBytes = 16 * 1024 * 1024;
    internal const int DefaultCheckpointPendingRows = 32_768;
    private const int EncodedCapacity = 4096;
    private const int RowCapacity = 512;
    // SQLite's page cache per connection, in KiB (its default is 2,000): a commit appends to the right edge of two
    // tables, which needs a few pages, and the cache of a loaded node otherwise stays full of pages it never reads again.
    private const int PageCacheKiB = 512;
    // Stored replies older than the cache's oldest are deleted every this many commits.
    internal const int ReplyTrimEvery = 256;

    private readonly SqliteConnection _connection;
    private readonly FileStream _lock;
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _appendJournal;
    private readonly sqlite3_stmt _appendReplies;
    private readonly sqlite3_stmt _trimReplies;
    private readonly sqlite3_stmt _upsert;
    private readonly sqlite3_stmt _delete;
    private readonly sqlite3_stmt _begin;
    private readonly sqlite3_stmt _commit;
    private readonly sqlite3_stmt _rollback;
    // One commit's journal record and replies are encoded here in turn; bound as spans, never copied to an array.
    private ArrayBufferWriter<byte> _encoded = new(EncodedCapacity);
    // One row's value, written by the registry straight from its state and copied into the journal record.
    private ArrayBufferWriter<byte> _row = new(RowCapacity);
    // The rows of the commit under way and whether each is present (false: deleted); reused.
    private readonly List<(StateKey Key, bool Present)> _written = [];
    // Keys written to the journal since the last checkpoint (their values are in the journal). Keys whose entity never
    // reached the state table and is gone again are dropped at once.
    private readonly HashSet<StateKey> _pending = [];
    // Keys present in the state table, so a delete of a row that was never checkpointed costs nothing.
    private readonly HashSet<StateKey> _checkpointed = [];
    // Every stored reply row (its id and newest reply's time), oldest first: a trim deletes a range of ids, where a
    // condition on stored_at read every row of the table each time.
    private readonly Queue<(long Id, long StoredAt)> _replyRows = new();
    private readonly StoredReplies _replyForm = new();
    private long _journalBytes;
    private int _commits;
    // The integrity check started by Open; Load does not return before it has passed.
    private Task _integrity = Task.CompletedTask;
    // Set when the tables and format mark are written once the integrity check has passed.
    private bool _schemaPending;
    // Copies the write-ahead log into the database file off the registry thread; started once Load has checked the file.
    private readonly string _synchronous;
    private WalCheckpointer? _checkpointer;

    private SqliteRegistryStore(string directory, string path, SqliteConnection connection, FileStream lockFile, string synchronous)
    {
        _synchronous = synchronous;
        Directory = directory;
        Location = path;
        _connection = connection;
        _lock = lockFile;
        // The write path uses SQLite's own prepared statements on this store's connection: a SqliteCommand makes a
        // data reader and binds through boxed parameters on every run, and SqliteTransaction prepares its BEGIN and
        // COMMIT text anew each time, all of it a wake-up's fixed cost. The connection is this store's alone and
        // never has a SqliteTransaction open.
        _db = connection.Handle!;
        _appendJournal = Prepare("INSERT INTO journal(writes) VALUES (?1)");
        _appendReplies = Prepare("INSERT INTO replies(stored_at, entries) VALUES (?1, ?2)");
        _trimReplies = Prepare("DELETE FROM replies WHERE id <= ?1");
        _upsert = Prepare("INSERT INTO state(kind, key, value) VALUES (?1, ?2, ?3) ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value");
        _delete = Prepare("DELETE FROM state WHERE kind = ?1 AND key = ?2");
        _begin = Prepare("BEGIN IMMEDIATE");
        _commit = Prepare("COMMIT");
        _rollback = Prepare("ROLLBACK");
    }

    /// <summary>The background copier of the write-ahead log, once <see cref="Load"/> has run (tests).</summary>
    internal WalCheckpointer? Checkpointer => _checkpointer;

    /// <summary>Journal records the last checkpoint read back (tests).</summary>
    internal int FoldRecordsRead { get; private set; }

    /// <summary>A checkpoint runs when this many changed rows wait for it (or the journal holds 16 MiB); lowered by tests.</summary>
    internal int CheckpointPendingRows { get; set; } = DefaultCheckpointPendingRows;

    public bool IsDurable => true;

    /// <summary>The database file.</summary>
    public string Location { get; }

    /// <summary>The data directory.</summary>
    public string Directory { get; }

    /// <summary>
    /// Opens (or creates) the store in <paramref name="options"/>' data directory and takes its lock. Throws
    /// <see cref="RegistryStoreException"/>, naming the file and what to do, when the directory is in use or cannot
    /// be created, or the file is damaged, belongs to another program or has a newer format.
    /// </summary>
    public static SqliteRegistryStore Open(RegistryStoreOptions options)
    {
        var directory = Path.GetFullPath(options.ResolvedDataDirectory);
        try
        {
            System.IO.Directory.CreateDirectory(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RegistryStoreException($"Cannot create the data directory {directory}: {ex.Message} Choose another with --data-dir.", ex);
        }
        var lockFile = TakeLock(directory);
        var path = Path.Combine(directory, DatabaseFileName);
        SqliteConnection? connection = null;
        try
        {
            connection = Connect(path, SqliteOpenMode.ReadWriteCreate);
            var empty = CheckFormat(connection, path);
            Execute(connection, "PRAGMA journal_mode=WAL");
            var synchronous = options.Durability == StoreDurability.Power ? "FULL" : "NORMAL";
            Execute(connection, $"PRAGMA synchronous={synchronous}");
            // The log is copied back into the database file by WalCheckpointer's thread; the writer's own automatic
            // checkpoint stays on, at a higher mark, as the bound on the log's size.
            Execute(connection, $"PRAGMA wal_autocheckpoint={WalCheckpointer.InlinePages}");
            Execute(connection, $"PRAGMA cache_size=-{PageCacheKiB}");
            if (options.MaxSizeBytes is { } max) SetMaxSize(connection, max);
            // A new file gets its tables now; a store that holds something is checked first and only then written
            // (its format mark) by Load, so a damaged store is refused untouched.
            if (empty) CreateSchema(connection);
            return new SqliteRegistryStore(directory, path, connection, lockFile, synchronous) { _integrity = empty ? Task.CompletedTask : StartQuickCheck(path), _schemaPending = !empty };
        }
        catch (SqliteException ex)
        {
            connection?.Dispose();
            lockFile.Dispose();
            throw new RegistryStoreException(
                $"{path} cannot be used as a registry store ({ex.Message.TrimEnd('.')}). Nothing was changed: move the file away to start empty, or restore a backup into it (Onex.RegistryNode/README.md, \"Data directory\").", ex);
        }
        catch
        {
            connection?.Dispose();
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Limits the database file to about <paramref name="maxBytes"/> (whole pages); a limit below what it holds refuses new pages.</summary>
    public void SetMaxSize(long? maxBytes) => SetMaxSize(_connection, maxBytes ?? long.MaxValue);

    /// <summary>
    /// Tests: makes every commit fail as a store that refuses writes (SQLite's <c>query_only</c>), or lifts that. Call it
    /// on the registry thread (<c>RegistryNodeHost.InvokeAsync</c>), which owns the connection.
    /// </summary>
    internal void RefuseWrites(bool refuse) => Execute(_connection, $"PRAGMA query_only = {(refuse ? 1 : 0)}");

    public StoredState Load()
    {
        try
        {
            var state = LoadRows();
            _integrity.GetAwaiter().GetResult();
            if (_schemaPending)
            {
                CreateSchema(_connection);
                _schemaPending = false;
            }
            // Only now: a checkpoint writes into the database file, and a store that failed its check stays untouched.
            _checkpointer ??= WalCheckpointer.Start(Location, _synchronous);
            return state;
        }
        catch (SqliteException ex)
        {
            _integrity.GetAwaiter().GetResult(); // names what quick_check found, when it found something
            throw new RegistryStoreException(
                $"{Location} cannot be read ({ex.Message.TrimEnd('.')}). Nothing was changed: restore a backup into it, or move it away to start empty.", ex);
        }
    }

    private StoredState LoadRows()
    {
        _pending.Clear();
        _checkpointed.Clear();
        _journalBytes = 0;
        // The kept replies are read first and decoded on another core while the state rows are read.
        var replyBlobs = new List<byte[]>();
        _replyRows.Clear();
        using (var select = _connection.CreateCommand())
        {
            select.CommandText = "SELECT id, stored_at, entries FROM replies ORDER BY id";
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                _replyRows.Enqueue((reader.GetInt64(0), reader.GetInt64(1)));
                replyBlobs.Add((byte[])reader.GetValue(2));
            }
        }
        var replies = Task.Run(() => replyBlobs.SelectMany(StoredReplies.Decode).ToList());
        var rows = new Dictionary<StateKey, byte[]>();
        using (var select = _connection.CreateCommand())
        {
            select.CommandText = "SELECT kind, key, value FROM state";
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                var key = new StateKey((StoredKind)reader.GetInt32(0), reader.GetString(1));
                rows[key] = (byte[])reader.GetValue(2);
                _checkpointed.Add(key);
            }
        }
        using (var select = _connection.CreateCommand())
        {
            select.CommandText = "SELECT writes FROM journal ORDER BY id";
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                var blob = (byte[])reader.GetValue(0);
                _journalBytes += blob.Length;
                foreach (var write in DecodeWrites(blob))
                {
                    if (write.Value is null) rows.Remove(write.Key);
                    else rows[write.Key] = write.Value;
                    Remember(write);
                }
            }
        }
        return new StoredState(rows, replies.GetAwaiter().GetResult());
    }

    public void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept) =>
        Commit(writes.Select(w => w.Key).ToList(), new GivenRows(writes), replies, oldestReplyKept);

    public void Commit(IReadOnlyCollection<StateKey> changed, IStoredRows rows, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
        if (changed.Count == 0 && replies.Count == 0) return;
        var checkpoint = changed.Count > 0 && (_journalBytes >= CheckpointJournalBytes || _pending.Count + changed.Count >= CheckpointPendingRows);
        var trim = ++_commits % ReplyTrimEvery == 0;
        var journalBytes = 0;
        long appended = 0;
        long replyRow = 0;
        var trimmed = 0;
        Dictionary<StateKey, byte[]?>? folded = null;
        _written.Clear();
        try
        {
            Run(_begin);
            try
            {
                if (checkpoint)
                {
                    folded = FoldJournal();
                    foreach (var key in changed) folded[key] = WriteValue(key, rows) ? _row.WrittenSpan.ToArray() : null;
                    foreach (var (key, value) in folded)
                    {
                        WriteRow(key, value);
                        appended += key.Key.Length + (value?.Length ?? 0);
                    }
                    Execute(_connection, "DELETE FROM journal");
                }
                else if (changed.Count > 0)
                {
                    _encoded.ResetWrittenCount();
                    EncodeWrites(changed, rows);
                    journalBytes = _encoded.WrittenCount;
                    Bind(_appendJournal, 1, _encoded.WrittenSpan);
                    Run(_appendJournal);
                }
                if (replies.Count > 0)
                {
                    _encoded.ResetWrittenCount();
                    _replyForm.Encode(replies, _encoded);
                    Bind(_appendReplies, 1, replies[^1].StoredAt);
                    Bind(_appendReplies, 2, _encoded.WrittenSpan);
                    Run(_appendReplies);
                    appended += _encoded.WrittenCount;
                    replyRow = raw.sqlite3_last_insert_rowid(_db);
                }
                if (trim)
                {
                    long through = 0;
                    foreach (var (id, storedAt) in _replyRows)
                    {
                        if (storedAt >= oldestReplyKept) break;
                        through = id;
                        trimmed++;
                    }
                    if (trimmed > 0)
                    {
                        Bind(_trimReplies, 1, through);
                        Run(_trimReplies);
                    }
                }
                Run(_commit);
            }
            catch (SqliteException)
            {
                RollBack();
                throw;
            }
        }
        catch (SqliteException ex)
        {
            throw new StoreWriteException($"The registry store {Location} refused a commit: {ex.Message}", ex);
        }

        _checkpointer?.Appended(appended + journalBytes);
        for (; trimmed > 0; trimmed--) _replyRows.Dequeue();
        if (replyRow != 0) _replyRows.Enqueue((replyRow, replies[^1].StoredAt));
        if (folded is not null)
        {
            foreach (var (key, value) in folded) Checkpointed(key, value);
            _pending.Clear();
            _journalBytes = 0;
        }
        else if (journalBytes > 0)
        {
            _journalBytes += journalBytes;
            foreach (var (key, present) in _written) Remember(key, present);
        }
        // A commit of an unusually large batch (a checkpoint's worth of tools) does not keep its buffers for good.
        if (_encoded.Capacity > 1024 * 1024) _encoded = new ArrayBufferWriter<byte>(EncodedCapacity);
        if (_row.Capacity > 1024 * 1024) _row = new ArrayBufferWriter<byte>(RowCapacity);
    }

    /// <summary>One journal record: [[kind, key, value or nil], ...], each value written by <paramref name="rows"/> (noted in <see cref="_written"/>).</summary>
    private void EncodeWrites(IReadOnlyCollection<StateKey> changed, IStoredRows rows)
    {
        var writer = new MessagePackWriter(_encoded);
        writer.WriteArrayHeader(changed.Count);
        foreach (var key in changed)
        {
            writer.WriteArrayHeader(3);
            writer.Write((byte)key.Kind);
            writer.Write(key.Key);
            var present = WriteValue(key, rows);
            if (present) writer.Write(_row.WrittenSpan);
            else writer.WriteNil();
            _written.Add((key, present));
        }
        writer.Flush();
    }

    /// <summary>Writes the current value of <paramref name="key"/>'s row into <see cref="_row"/>; false when it is gone.</summary>
    private bool WriteValue(StateKey key, IStoredRows rows)
    {
        _row.ResetWrittenCount();
        var writer = new MessagePackWriter(_row);
        if (!rows.TryWrite(key, ref writer)) return false;
        writer.Flush();
        return true;
    }

    /// <summary>The current value of every row waiting for a checkpoint (null: deleted), read back inside the checkpoint's transaction.</summary>
    /// <remarks>
    /// Newest record first, and within a record its last write first, so only a row's final value is copied out (with
    /// lease churn most journal entries are overwritten or deleted later); each record is read into one reused buffer.
    /// Rows born and gone since the last checkpoint are not waiting, and the reading stops once every waiting row is
    /// found: under churn the rows still waiting were mostly written recently, so most of the journal is never read.
    /// </remarks>
    private Dictionary<StateKey, byte[]?> FoldJournal()
    {
        var folded = new Dictionary<StateKey, byte[]?>(_pending.Count);
        if (_pending.Count == 0) return folded;
        var record = new byte[EncodedCapacity];
        var entries = new List<(StateKey Key, int Start, int Length)>();
        // SQLite's own statement: Microsoft.Data.Sqlite's reader copies every blob into a new array.
        using var select = Prepare("SELECT writes FROM journal ORDER BY id DESC");
        int rc;
        FoldRecordsRead = 0;
        while ((rc = raw.sqlite3_step(select)) == raw.SQLITE_ROW)
        {
            FoldRecordsRead++;
            var blob = raw.sqlite3_column_blob(select, 0);
            var length = blob.Length;
            if (record.Length < length) record = new byte[Math.Max(length, record.Length * 2)];
            blob.CopyTo(record);
            entries.Clear();
            var writes = new MessagePackReader(record.AsMemory(0, length));
            var count = writes.ReadArrayHeader();
            for (var i = 0; i < count; i++)
            {
                writes.ReadArrayHeader();
                var kind = (StoredKind)writes.ReadByte();
                var key = writes.ReadString()!;
                if (writes.TryReadNil())
                {
                    entries.Add((new StateKey(kind, key), -1, 0));
                    continue;
                }
                var size = (int)writes.ReadBytes()!.Value.Length;
                entries.Add((new StateKey(kind, key), (int)writes.Consumed - size, size));
            }
            for (var i = entries.Count - 1; i >= 0; i--)
            {
                var (key, start, size) = entries[i];
                if (_pending.Contains(key) && !folded.ContainsKey(key)) folded[key] = start < 0 ? null : record.AsSpan(start, size).ToArray();
            }
            if (folded.Count == _pending.Count) break;
        }
        if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW)) SqliteException.ThrowExceptionForRC(rc, _db);
        return folded;
    }

    /// <summary>
    /// Copies the store in <paramref name="dataDirectory"/> to <paramref name="file"/> while a registry may be serving
    /// from it (SQLite's online backup: a consistent copy as of one commit), marked so that a registry started from
    /// it begins a new epoch. Throws <see cref="RegistryStoreException"/> when there is no store to copy.
    /// </summary>
    public static void Backup(string dataDirectory, string file)
    {
        var source = Path.Combine(Path.GetFullPath(dataDirectory), DatabaseFileName);
        if (!File.Exists(source))
            throw new RegistryStoreException($"No registry store at {source}; give the registry's --data-dir.");
        var target = Path.GetFullPath(file);
        if (File.Exists(target))
            throw new RegistryStoreException($"{target} exists already; name a new file (a backup never overwrites).");
        try
        {
            using var from = Connect(source, SqliteOpenMode.ReadOnly);
            CheckFormat(from, source);
            StartQuickCheck(source).GetAwaiter().GetResult();
            using (var to = Connect(target, SqliteOpenMode.ReadWriteCreate))
            {
                from.BackupDatabase(to);
                Execute(to, "PRAGMA journal_mode=DELETE");
                using var mark = to.CreateCommand();
                mark.CommandText = "INSERT INTO state(kind, key, value) VALUES ($kind, $key, $value) ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value";
                mark.Parameters.AddWithValue("$kind", (int)StoredKind.Meta);
                mark.Parameters.AddWithValue("$key", StoredMeta.BackupKey);
                mark.Parameters.AddWithValue("$value", new byte[] { 1 });
                mark.ExecuteNonQuery();
            }
            SqliteConnection.ClearAllPools();
        }
        catch (SqliteException ex)
        {
            SqliteConnection.ClearAllPools();
            try { File.Delete(target); } catch (IOException) { /* best effort: the message below says what failed */ }
            throw new RegistryStoreException($"Backup of {source} to {target} failed: {ex.Message}", ex);
        }
    }

    public void Dispose()
    {
        // A store opened and never loaded (a start that failed later) lets its integrity check finish first.
        try
        {
            _integrity.Wait();
        }
        catch (AggregateException)
        {
            // Already reported by Load, or nobody loaded this store.
        }
        // The checkpointer's connection closes first: the last connection to close copies the log back and removes it.
        _checkpointer?.Dispose();
        // SQLite's statements go before the connection that made them.
        _appendJournal.Dispose();
        _appendReplies.Dispose();
        _trimReplies.Dispose();
        _upsert.Dispose();
        _delete.Dispose();
        _begin.Dispose();
        _commit.Dispose();
        _rollback.Dispose();
        _connection.Dispose();
        SqliteConnection.ClearPool(_connection);
        _lock.Dispose();
    }

    private void Remember(StoredWrite write) => Remember(write.Key, write.Value is not null);

    private void Remember(StateKey key, bool present)
    {
        // A row that never reached the state table and is gone again needs no checkpoint at all.
        if (!present && !_checkpointed.Contains(key)) _pending.Remove(key);
        else _pending.Add(key);
    }

    private void Checkpointed(StateKey key, byte[]? value)
    {
        if (value is null) _checkpointed.Remove(key);
        else _checkpointed.Add(key);
    }

    /// <summary>Ends a failed transaction, if SQLite has not ended it already (it may, on a full disk or I/O error).</summary>
    private void RollBack()
    {
        if (_connection.Handle is { } db && SQLitePCL.raw.sqlite3_get_autocommit(db) != 0) return;
        try
        {
            Run(_rollback);
        }
        catch (SqliteException)
        {
            // Nothing more to undo here: the next BEGIN fails if the connection is unusable, and that commit is refused.
        }
    }

    private void WriteRow(StateKey key, byte[]? value)
    {
        if (value is null)
        {
            if (!_checkpointed.Contains(key)) return;
            Bind(_delete, 1, (long)key.Kind);
            Bind(_delete, 2, key.Key);
            Run(_delete);
            return;
        }
        Bind(_upsert, 1, (long)key.Kind);
        Bind(_upsert, 2, key.Key);
        Bind(_upsert, 3, value);
        Run(_upsert);
    }

    private sqlite3_stmt Prepare(string sql)
    {
        var rc = raw.sqlite3_prepare_v2(_db, sql, out var statement);
        SqliteException.ThrowExceptionForRC(rc, _db);
        return statement;
    }

    /// <summary>Runs a prepared statement that returns no rows and makes it ready for the next run; throws <see cref="SqliteException"/> as Microsoft.Data.Sqlite would.</summary>
    private void Run(sqlite3_stmt statement)
    {
        try
        {
            var rc = raw.sqlite3_step(statement);
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, _db);
        }
        finally
        {
            raw.sqlite3_reset(statement);
        }
    }

    private void Bind(sqlite3_stmt statement, int index, long value) => Check(raw.sqlite3_bind_int64(statement, index, value));

    private void Bind(sqlite3_stmt statement, int index, string value) => Check(raw.sqlite3_bind_text(statement, index, value));

    // SQLite copies the bytes (SQLITE_TRANSIENT), so the buffer may be reused at once.
    // An empty span would bind NULL (no pointer), so an empty blob is bound as one.
    private void Bind(sqlite3_stmt statement, int index, ReadOnlySpan<byte> value) =>
        Check(value.IsEmpty ? raw.sqlite3_bind_zeroblob(statement, index, 0) : raw.sqlite3_bind_blob(statement, index, value));

    private void Check(int rc) => SqliteException.ThrowExceptionForRC(rc, _db);

    private static FileStream TakeLock(string directory)
    {
        var path = Path.Combine(directory, LockFileName);
        try
        {
            // FileShare.None takes an exclusive advisory lock (flock) on Unix: a second registry on this directory fails here.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId + "\n");
            stream.Write(pid);
            stream.Flush();
            return stream;
        }
        catch (IOException ex)
        {
            var holder = "";
            try { holder = File.ReadAllText(path).Trim(); } catch (IOException) { /* the holder's pid is a courtesy */ }
            throw new RegistryStoreException(
                $"The data directory {directory} is in use by another registry{(holder.Length > 0 ? $" (pid {holder})" : "")}; stop it, or give this one another --data-dir.", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new RegistryStoreException($"Cannot write the lock file {path}: {ex.Message} Choose another --data-dir.", ex);
        }
    }

    private static SqliteConnection Connect(string path, SqliteOpenMode mode)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>Refuses a file that is not a registry store of a format this build reads; true when the file is new and empty.</summary>
    private static bool CheckFormat(SqliteConnection connection, string path)
    {
        // Reading the header fails with "file is not a database" for a file of another kind.
        var applicationId = Convert.ToInt32(Scalar(connection, "PRAGMA application_id"));
        var version = Convert.ToInt32(Scalar(connection, "PRAGMA user_version"));
        var tables = Convert.ToInt32(Scalar(connection, "SELECT count(*) FROM sqlite_schema"));
        if (applicationId == 0 && version == 0 && tables == 0) return true;
        if (applicationId != ApplicationId)
            throw new RegistryStoreException(
                $"{path} is a SQLite database of another program (application id {applicationId:x8}), not a registry store. Nothing was changed: point --data-dir at another directory.");
        if (version > FormatVersion)
            throw new RegistryStoreException(
                $"{path} was written by a newer OnexBus (store format {version}; this build reads up to {FormatVersion}). Nothing was changed: run the newer registry, or start this one on another --data-dir.");
        return false;
    }

    // SQLite's quick_check reads every page (about 100 ms for a 15 MB store on a busy machine): it runs on its own
    // read-only connection beside loading, and Load waits for it, so a damaged store still never starts serving.
    private static Task StartQuickCheck(string path) => Task.Run(() =>
    {
        try
        {
            using var reader = Connect(path, SqliteOpenMode.ReadOnly);
            // It reads every page once: a full cache would only leave its memory behind in the heap.
            Execute(reader, $"PRAGMA cache_size=-{PageCacheKiB}");
            var check = Convert.ToString(Scalar(reader, "PRAGMA quick_check"));
            if (check != "ok")
                throw new RegistryStoreException(
                    $"{path} is damaged (SQLite quick_check: {check}). Nothing was changed: restore a backup into it, or move it away to start empty.");
        }
        catch (SqliteException ex)
        {
            throw new RegistryStoreException(
                $"{path} is damaged (SQLite quick_check: {ex.Message.TrimEnd('.')}). Nothing was changed: restore a backup into it, or move it away to start empty.", ex);
        }
    });

    private static void CreateSchema(SqliteConnection connection)
    {
        Execute(connection, $"""
            CREATE TABLE IF NOT EXISTS state(kind INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(kind, key)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS journal(id INTEGER PRIMARY KEY, writes BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS replies(id INTEGER PRIMARY KEY, stored_at INTEGER NOT NULL, entries BLOB NOT NULL);
            PRAGMA application_id = {ApplicationId};
            PRAGMA user_version = {FormatVersion};
            """);
    }

    private static void SetMaxSize(SqliteConnection connection, long maxBytes)
    {
        var pageSize = Convert.ToInt64(Scalar(connection, "PRAGMA page_size"));
        var pages = Math.Max(1, maxBytes / pageSize);
        Execute(connection, $"PRAGMA max_page_count = {pages}");
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static void Execute(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }

    internal static byte[] EncodeWrites(IReadOnlyList<StoredWrite> writes)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + writes.Count * 96);
        EncodeWrites(writes, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private static void EncodeWrites(IReadOnlyList<StoredWrite> writes, IBufferWriter<byte> buffer)
    {
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(writes.Count);
        foreach (var write in writes)
        {
            writer.WriteArrayHeader(3);
            writer.Write((byte)write.Key.Kind);
            writer.Write(write.Key.Key);
            if (write.Value is null) writer.WriteNil();
            else writer.Write(write.Value);
        }
        writer.Flush();
    }

    internal static List<StoredWrite> DecodeWrites(byte[] blob)
    {
        var reader = new MessagePackReader(blob);
        var count = reader.ReadArrayHeader();
        var writes = new List<StoredWrite>(count);
        for (var i = 0; i < count; i++)
        {
            reader.ReadArrayHeader();
            var kind = (StoredKind)reader.ReadByte();
            var key = reader.ReadString()!;
            var value = reader.TryReadNil() ? null : reader.ReadBytes()!.Value.ToArray();
            writes.Add(new StoredWrite(new StateKey(kind, key), value));
        }
        return writes;
    }
}
