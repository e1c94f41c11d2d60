using System.Buffers;
using MessagePack;
using Microsoft.Data.Sqlite;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// The registry's state in an embedded SQLite database (WAL mode) in its data directory. Each commit appends the
/// changed rows as one journal record (one row insert however many requests the wake-up handled); a checkpoint
/// folds the journal into the <c>state</c> table when it grows, so a start reads the state table and replays a short
/// journal. Rows of entities born and gone between checkpoints never reach the state table. Kept replies are stored
/// per commit in <c>replies</c> and dropped once the in-memory cache has let them go.
/// </summary>
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
    /// 2: lease rows in <see cref="LeaseRow"/>'s compact form (1: the wire form); a format-1 store is marked 2 when
    /// opened, since it is written in the new form from then on and an older build must not misread it.
    /// </summary>
    public const int FormatVersion = 2;

    /// <summary><c>PRAGMA application_id</c> of a registry store: "ONXB".</summary>
    public const int ApplicationId = 0x4F4E5842;

    // A checkpoint runs when the journal holds this many bytes or the rows waiting for it reach this count: bounds
    // both the start time (journal replay) and the memory the pending rows take.
    private const long CheckpointJournalBytes = 16 * 1024 * 1024;
    private const int CheckpointPendingRows = 32_768;
    // Stored replies older than the cache's oldest are deleted every this many commits.
    private const int ReplyTrimEvery = 256;

    private readonly SqliteConnection _connection;
    private readonly FileStream _lock;
    private readonly SqliteCommand _appendJournal;
    private readonly SqliteCommand _appendReplies;
    private readonly SqliteCommand _trimReplies;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _delete;
    private readonly SqliteCommand _begin;
    private readonly SqliteCommand _commit;
    private readonly SqliteCommand _rollback;
    // Rows written to the journal since the last checkpoint, by key (null: deleted). Rows whose entity never reached
    // the state table and is gone again are dropped at once.
    private readonly Dictionary<StateKey, byte[]?> _pending = new();
    // Keys present in the state table, so a delete of a row that was never checkpointed costs nothing.
    private readonly HashSet<StateKey> _checkpointed = [];
    private long _journalBytes;
    private int _commits;
    // The integrity check started by Open; Load does not return before it has passed.
    private Task _integrity = Task.CompletedTask;
    // Set when the tables and format mark are written once the integrity check has passed.
    private bool _schemaPending;

    private SqliteRegistryStore(string directory, string path, SqliteConnection connection, FileStream lockFile)
    {
        Directory = directory;
        Location = path;
        _connection = connection;
        _lock = lockFile;
        _appendJournal = Prepare("INSERT INTO journal(writes) VALUES ($writes)", "$writes");
        _appendReplies = Prepare("INSERT INTO replies(stored_at, entries) VALUES ($at, $entries)", "$at", "$entries");
        _trimReplies = Prepare("DELETE FROM replies WHERE stored_at < $before", "$before");
        _upsert = Prepare("INSERT INTO state(kind, key, value) VALUES ($kind, $key, $value) ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value",
            "$kind", "$key", "$value");
        _delete = Prepare("DELETE FROM state WHERE kind = $kind AND key = $key", "$kind", "$key");
        // Transactions through statements kept prepared: SqliteTransaction prepares its BEGIN and COMMIT text anew on
        // every commit, which is a wake-up's fixed cost. The connection is this store's alone and never has a
        // SqliteTransaction open, so the commands run with none (Microsoft.Data.Sqlite requires them to match).
        _begin = Prepare("BEGIN IMMEDIATE");
        _commit = Prepare("COMMIT");
        _rollback = Prepare("ROLLBACK");
    }

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
            Execute(connection, options.Durability == StoreDurability.Power ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
            if (options.MaxSizeBytes is { } max) SetMaxSize(connection, max);
            // A new file gets its tables now; a store that holds something is checked first and only then written
            // (its format mark) by Load, so a damaged store is refused untouched.
            if (empty) CreateSchema(connection);
            return new SqliteRegistryStore(directory, path, connection, lockFile) { _integrity = empty ? Task.CompletedTask : StartQuickCheck(path), _schemaPending = !empty };
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
        using (var select = _connection.CreateCommand())
        {
            select.CommandText = "SELECT entries FROM replies ORDER BY id";
            using var reader = select.ExecuteReader();
            while (reader.Read()) replyBlobs.Add((byte[])reader.GetValue(0));
        }
        var replies = Task.Run(() => replyBlobs.SelectMany(DecodeReplies).ToList());
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

    public void Commit(IReadOnlyList<StoredWrite> writes, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
        if (writes.Count == 0 && replies.Count == 0) return;
        var checkpoint = writes.Count > 0 && (_journalBytes >= CheckpointJournalBytes || _pending.Count + writes.Count >= CheckpointPendingRows);
        var trim = ++_commits % ReplyTrimEvery == 0;
        byte[]? journal = null;
        try
        {
            _begin.ExecuteNonQuery();
            try
            {
                if (checkpoint)
                {
                    foreach (var (key, value) in _pending) WriteRow(key, value);
                    foreach (var write in writes) WriteRow(write.Key, write.Value);
                    Execute(_connection, "DELETE FROM journal");
                }
                else if (writes.Count > 0)
                {
                    journal = EncodeWrites(writes);
                    _appendJournal.Parameters[0].Value = journal;
                    _appendJournal.ExecuteNonQuery();
                }
                if (replies.Count > 0)
                {
                    _appendReplies.Parameters[0].Value = replies[^1].StoredAt;
                    _appendReplies.Parameters[1].Value = EncodeReplies(replies);
                    _appendReplies.ExecuteNonQuery();
                }
                if (trim)
                {
                    _trimReplies.Parameters[0].Value = oldestReplyKept;
                    _trimReplies.ExecuteNonQuery();
                }
                _commit.ExecuteNonQuery();
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

        if (checkpoint)
        {
            foreach (var (key, value) in _pending) Checkpointed(key, value);
            foreach (var write in writes) Checkpointed(write.Key, write.Value);
            _pending.Clear();
            _journalBytes = 0;
        }
        else if (journal is not null)
        {
            _journalBytes += journal.Length;
            foreach (var write in writes) Remember(write);
        }
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

    private void Remember(StoredWrite write)
    {
        // A row that never reached the state table and is gone again needs no checkpoint at all.
        if (write.Value is null && !_checkpointed.Contains(write.Key)) _pending.Remove(write.Key);
        else _pending[write.Key] = write.Value;
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
            _rollback.ExecuteNonQuery();
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
            _delete.Parameters[0].Value = (int)key.Kind;
            _delete.Parameters[1].Value = key.Key;
            _delete.ExecuteNonQuery();
            return;
        }
        _upsert.Parameters[0].Value = (int)key.Kind;
        _upsert.Parameters[1].Value = key.Key;
        _upsert.Parameters[2].Value = value;
        _upsert.ExecuteNonQuery();
    }

    private SqliteCommand Prepare(string sql, params string[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters) command.Parameters.Add(new SqliteParameter { ParameterName = name });
        return command;
    }

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
        return buffer.WrittenSpan.ToArray();
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

    internal static byte[] EncodeReplies(IReadOnlyList<StoredReply> replies)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + replies.Count * 256);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(replies.Count);
        foreach (var reply in replies)
        {
            writer.WriteArrayHeader(7);
            writer.Write(reply.ClientId);
            writer.Write(reply.RequestId);
            writer.Write(reply.MessageType);
            writer.Write(reply.Body);
            writer.Write(reply.Reply);
            writer.Write(reply.ErrorCode);
            writer.Write(reply.StoredAt);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    internal static IEnumerable<StoredReply> DecodeReplies(byte[] blob)
    {
        var reader = new MessagePackReader(blob);
        var count = reader.ReadArrayHeader();
        var replies = new List<StoredReply>(count);
        for (var i = 0; i < count; i++)
        {
            reader.ReadArrayHeader();
            replies.Add(new StoredReply(
                reader.ReadString()!, reader.ReadString()!, reader.ReadString()!,
                reader.ReadBytes()!.Value.ToArray(), reader.ReadBytes()!.Value.ToArray(),
                reader.ReadString(), reader.ReadInt64()));
        }
        return replies;
    }
}
