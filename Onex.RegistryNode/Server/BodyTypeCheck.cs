using System.Collections.Concurrent;
using System.Reflection;
using MessagePack;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Names the field a body failed on. MessagePack-CSharp reports a wrongly typed value without saying which
/// key held it; after a failed decode this walks the body against the contract type and returns the first
/// key whose value has the wrong MessagePack type (e.g. <c>count</c>, <c>errorCodes[0].code</c>) and what was
/// expected. Only runs on the error path.
/// </summary>
internal static class BodyTypeCheck
{
    private static readonly ConcurrentDictionary<Type, Dictionary<string, Type>> MembersByType = new();

    /// <summary>The first mistyped field of <paramref name="body"/> as <paramref name="type"/>, or null when none is found.</summary>
    public static (string Field, string Expected)? FindMistyped(Type type, ReadOnlyMemory<byte> body)
    {
        try
        {
            var reader = new MessagePackReader(body);
            return CheckObject(ref reader, type, "");
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or OverflowException)
        {
            return null; // the structure itself is broken; the codec's message already says so
        }
    }

    private static (string, string)? CheckObject(ref MessagePackReader reader, Type type, string path)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            reader.Skip();
            return (path.Length == 0 ? "body" : path, "a map");
        }
        var members = MembersOf(type);
        var count = reader.ReadMapHeader();
        for (var i = 0; i < count; i++)
        {
            if (reader.NextMessagePackType != MessagePackType.String)
                return (path.Length == 0 ? "body" : path, "string keys");
            var key = reader.ReadString()!;
            var fieldPath = path.Length == 0 ? key : path + "." + key;
            if (!members.TryGetValue(key, out var memberType))
            {
                reader.Skip();
                continue;
            }
            var found = CheckValue(ref reader, memberType, fieldPath);
            if (found is not null) return found;
        }
        return null;
    }

    private static (string, string)? CheckValue(ref MessagePackReader reader, Type type, string path)
    {
        var next = reader.NextMessagePackType;
        var underlying = Nullable.GetUnderlyingType(type);
        if (next == MessagePackType.Nil)
        {
            reader.Skip();
            // A nil integer or boolean cannot be read as one (the codec names only the body); other nils are the
            // codec's missing-field check, not a type error.
            if (type == typeof(int) || type == typeof(long)) return (path, "an integer");
            if (type == typeof(bool)) return (path, "a boolean");
            return null;
        }
        type = underlying ?? type;

        if (type == typeof(string))
            return Expect(ref reader, next == MessagePackType.String, path, "a string");
        if (type == typeof(bool))
            return Expect(ref reader, next == MessagePackType.Boolean, path, "a boolean");
        if (type == typeof(int) || type == typeof(long))
        {
            if (next != MessagePackType.Integer) return Expect(ref reader, false, path, "an integer");
            // A uint 64 above the int64 range (2^63 and more) fits no field: name the field, not .NET's overflow.
            if (reader.NextCode == MessagePackCode.UInt64)
            {
                var unsigned = reader.ReadUInt64();
                if (unsigned > long.MaxValue) return (path, type == typeof(int) ? "a 32-bit integer" : "a 64-bit integer");
                return type == typeof(int) && unsigned > int.MaxValue ? (path, "a 32-bit integer") : null;
            }
            if (type == typeof(int))
            {
                var value = reader.ReadInt64();
                return value is < int.MinValue or > int.MaxValue ? (path, "a 32-bit integer") : null;
            }
            reader.ReadInt64();
            return null;
        }
        if (type.GetCustomAttribute<MessagePackObjectAttribute>() is not null)
            return CheckObject(ref reader, type, path);

        var dictionary = type.IsGenericType ? FindInterface(type, typeof(IReadOnlyDictionary<,>)) : null;
        if (dictionary is not null)
        {
            if (next != MessagePackType.Map) return Expect(ref reader, false, path, "a map");
            var valueType = dictionary.GetGenericArguments()[1];
            var count = reader.ReadMapHeader();
            for (var i = 0; i < count; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String) return (path, "a map with string keys");
                var key = reader.ReadString();
                var found = CheckValue(ref reader, valueType, $"{path}.{key}");
                if (found is not null) return found;
            }
            return null;
        }
        var list = type.IsGenericType ? FindInterface(type, typeof(IReadOnlyList<>)) : null;
        if (list is not null)
        {
            if (next != MessagePackType.Array) return Expect(ref reader, false, path, "an array");
            var elementType = list.GetGenericArguments()[0];
            var count = reader.ReadArrayHeader();
            for (var i = 0; i < count; i++)
            {
                var found = CheckValue(ref reader, elementType, $"{path}[{i}]");
                if (found is not null) return found;
            }
            return null;
        }
        reader.Skip();
        return null;
    }

    private static (string, string)? Expect(ref MessagePackReader reader, bool ok, string path, string expected)
    {
        reader.Skip();
        return ok ? null : (path, expected);
    }

    private static Type? FindInterface(Type type, Type generic) =>
        type.GetGenericTypeDefinition() == generic
            ? type
            : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == generic);

    private static Dictionary<string, Type> MembersOf(Type type) => MembersByType.GetOrAdd(type, static t =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Key: p.GetCustomAttribute<KeyAttribute>()?.StringKey, p.PropertyType))
            .Where(p => p.Key is not null)
            .ToDictionary(p => p.Key!, p => p.PropertyType, StringComparer.Ordinal));
}
