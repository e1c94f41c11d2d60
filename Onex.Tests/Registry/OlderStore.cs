using System.Buffers;
using MessagePack;
using Microsoft.Data.Sqlite;
using Onex.RegistryNode.Storage;

namespace Onex.Tests.Registry;

/// <summary>Rewrites a registry store as an older build left it, for the tests that read older store formats.</summary>
internal static class OlderStore
{
    public delegate void RowWriter(ref MessagePackWriter writer);

    /// <summary>
    /// Replaces each value of <paramref name="column"/> in <paramref name="table"/> with <paramref name="rewrite"/> of it
    /// and marks the file with store format <paramref name="format"/>; returns the values as they were.
    /// </summary>
    public static List<byte[]> Rewrite(string dataDirectory, string table, string column, Func<byte[], byte[]> rewrite, int format)
    {
        using var connection = Connect(dataDirectory, SqliteOpenMode.ReadWrite);
        var rows = new List<(long Id, byte[] Value)>();
        using (var select = connection.CreateCommand())
        {
            select.CommandText = $"SELECT id, {column} FROM {table}";
            using var reader = select.ExecuteReader();
            while (reader.Read()) rows.Add((reader.GetInt64(0), (byte[])reader.GetValue(1)));
        }
        foreach (var (id, value) in rows)
        {
            using var update = connection.CreateCommand();
            update.CommandText = $"UPDATE {table} SET {column} = $value WHERE id = $id";
            update.Parameters.AddWithValue("$value", rewrite(value));
            update.Parameters.AddWithValue("$id", id);
            update.ExecuteNonQuery();
        }
        using var mark = connection.CreateCommand();
        mark.CommandText = $"PRAGMA user_version = {format}";
        mark.ExecuteNonQuery();
        return rows.Select(r => r.Value).ToList();
    }

    /// <summary>The store format the file in <paramref name="dataDirectory"/> is marked with.</summary>
    public static int FormatOf(string dataDirectory)
    {
        using var connection = Connect(dataDirectory, SqliteOpenMode.ReadOnly);
        using var version = connection.CreateCommand();
        version.CommandText = "PRAGMA user_version";
        return Convert.ToInt32(version.ExecuteScalar());
    }

    /// <summary>The bytes <paramref name="write"/> writes: a stored row made by hand.</summary>
    public static byte[] Row(RowWriter write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static SqliteConnection Connect(string dataDirectory, SqliteOpenMode mode)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDirectory, SqliteRegistryStore.DatabaseFileName), Mode = mode, Pooling = false,
        }.ToString());
        connection.Open();
        return connection;
    }
}
