using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using MessagePack;

namespace Onex.Protocol;

/// <summary>
/// Finds what MessagePack-CSharp lets through: a missing key or an explicit nil where a contract type declares a
/// non-nullable reference (a required string, a list, a map, a nested object, or an element of one). Without this
/// check a body like <c>{"count":1}</c> would decode into a <see cref="PortRequest"/> whose <c>NodeId</c> is null.
/// </summary>
internal static class MessageShape
{
    private sealed record Member(string Key, PropertyInfo Property, NullabilityInfo Nullability);

    private static readonly ConcurrentDictionary<Type, Member[]> MembersByType = new();

    /// <summary>The path of the first value that must not be nil but is (e.g. <c>leases[0].nodeId</c>), or null.</summary>
    public static string? FindMissing(object value) => Walk(value, "");

    private static string? Walk(object value, string path)
    {
        foreach (var member in MembersOf(value.GetType()))
        {
            var memberPath = path.Length == 0 ? member.Key : path + "." + member.Key;
            var found = Check(member.Property.GetValue(value), member.Nullability, memberPath);
            if (found is not null) return found;
        }
        return null;
    }

    private static string? Check(object? value, NullabilityInfo nullability, string path)
    {
        if (value is null)
            return nullability.ReadState == NullabilityState.NotNull && !nullability.Type.IsValueType ? path : null;
        if (value is string) return null;

        var type = value.GetType();
        if (type.GetCustomAttribute<MessagePackObjectAttribute>() is not null) return Walk(value, path);

        var args = nullability.GenericTypeArguments;
        if (value is IDictionary dictionary && args.Length == 2)
        {
            foreach (DictionaryEntry entry in dictionary)
            {
                var found = Check(entry.Value, args[1], $"{path}.{entry.Key}");
                if (found is not null) return found;
            }
            return null;
        }
        if (value is IEnumerable items && (args.Length == 1 || nullability.ElementType is not null))
        {
            var elementNullability = nullability.ElementType ?? args[0];
            var index = 0;
            foreach (var item in items)
            {
                var found = Check(item, elementNullability, $"{path}[{index++}]");
                if (found is not null) return found;
            }
        }
        return null;
    }

    private static Member[] MembersOf(Type type) => MembersByType.GetOrAdd(type, static t =>
    {
        var context = new NullabilityInfoContext();
        return t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Property: p, Key: p.GetCustomAttribute<KeyAttribute>()?.StringKey))
            .Where(p => p.Key is not null)
            .Select(p => new Member(p.Key!, p.Property, context.Create(p.Property)))
            .ToArray();
    });
}
