using System.Buffers;
using MessagePack;

namespace Onex.RegistryNode.Storage;

/// <summary>
/// The small rows beside the entities (<see cref="StoredKind.Meta"/>: counters, epoch, sequence) and the encoding of
/// composite values: a MessagePack array of integers, optionally led by a string or a nested record's bytes.
/// </summary>
internal static class StoredMeta
{
    /// <summary>[epoch, sequence] of the change journal.</summary>
    public const string JournalKey = "journal";

    /// <summary>[last fencing token, lease counter].</summary>
    public const string LeasesKey = "leases";

    /// <summary>[front order, back order, quarantine order] of the port pool.</summary>
    public const string PoolKey = "pool";

    /// <summary>Present in a backup: the registry started from it begins a new epoch.</summary>
    public const string BackupKey = "backup";

    public static byte[] Longs(params long[] values)
    {
        var buffer = new ArrayBufferWriter<byte>(8 + values.Length * 9);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(values.Length);
        foreach (var value in values) writer.Write(value);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes what <see cref="Longs"/> returns for these values, without an array.</summary>
    public static void WriteLongs(ref MessagePackWriter writer, long a, long b)
    {
        writer.WriteArrayHeader(2);
        writer.Write(a);
        writer.Write(b);
    }

    /// <summary>Writes what <see cref="Longs"/> returns for these values, without an array.</summary>
    public static void WriteLongs(ref MessagePackWriter writer, long a, long b, long c)
    {
        writer.WriteArrayHeader(3);
        writer.Write(a);
        writer.Write(b);
        writer.Write(c);
    }

    /// <summary>Writes what <see cref="Longs"/> returns for these values, without an array.</summary>
    public static void WriteLongs(ref MessagePackWriter writer, long a, long b, long c, long d)
    {
        writer.WriteArrayHeader(4);
        writer.Write(a);
        writer.Write(b);
        writer.Write(c);
        writer.Write(d);
    }

    public static long[] ReadLongs(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        var values = new long[reader.ReadArrayHeader()];
        for (var i = 0; i < values.Length; i++) values[i] = reader.ReadInt64();
        return values;
    }

    /// <summary>[text, values...].</summary>
    public static byte[] TextAndLongs(string text, params long[] values)
    {
        var buffer = new ArrayBufferWriter<byte>(16 + text.Length + values.Length * 9);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(1 + values.Length);
        writer.Write(text);
        foreach (var value in values) writer.Write(value);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public static (string Text, long[] Values) ReadTextAndLongs(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        var count = reader.ReadArrayHeader();
        var text = reader.ReadString()!;
        var values = new long[count - 1];
        for (var i = 0; i < values.Length; i++) values[i] = reader.ReadInt64();
        return (text, values);
    }

    /// <summary>[record bytes, values...].</summary>
    public static byte[] RecordAndLongs(byte[] record, params long[] values)
    {
        var buffer = new ArrayBufferWriter<byte>(16 + record.Length + values.Length * 9);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(1 + values.Length);
        writer.Write(record);
        foreach (var value in values) writer.Write(value);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public static (byte[] Record, long[] Values) ReadRecordAndLongs(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        var count = reader.ReadArrayHeader();
        var record = reader.ReadBytes()!.Value.ToArray();
        var values = new long[count - 1];
        for (var i = 0; i < values.Length; i++) values[i] = reader.ReadInt64();
        return (record, values);
    }
}
