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
    public static string? FindMissing(object value) => Walk(value);

    /// <summary>Reads <paramref name="type"/>'s members now rather than at its first check.</summary>
    public static void Prepare(Type type) => MembersOf(type);

    // Paths are built only on the way back from a failure, so a valid message costs no string work.
    private static string? Walk(object value)
    {
        foreach (var member in MembersOf(value.GetType()))
        {
            var found = Check(member.Property.GetValue(value), member.Nullability);
            if (found is not null) return found.Length == 0 ? member.Key : member.Key + found;
        }
        return null;
    }

    /// <summary>Null when fine; otherwise the failing path relative to this value ("" for the value itself).</summary>
    private static string? Check(object? value, NullabilityInfo nullability)
    {
        if (value is null)
            return nullability.ReadState == NullabilityState.NotNull ? "" : null;
        if (value is string) return null;

        if (value.GetType().IsDefined(typeof(MessagePackObjectAttribute), inherit: false))
        {
            var inner = Walk(value);
            return inner is null ? null : "." + inner;
        }

        var args = nullability.GenericTypeArguments;
        if (value is IDictionary dictionary && args.Length == 2)
        {
            if (args[1].Type.IsValueType) return null;
            foreach (DictionaryEntry entry in dictionary)
            {
                var found = Check(entry.Value, args[1]);
                if (found is not null) return $".{entry.Key}{found}";
            }
            return null;
        }
        var elementNullability = nullability.ElementType ?? (args.Length == 1 ? args[0] : null);
        if (value is IEnumerable items && elementNullability is not null && !elementNullability.Type.IsValueType)
        {
            var index = 0;
            foreach (var item in items)
            {
                var found = Check(item, elementNullability);
                if (found is not null) return $"[{index}]{found}";
                index++;
            }
        }
        return null;
    }

    private static Member[] MembersOf(Type type) => MembersByType.GetOrAdd(type, static t =>
    {
        var context = new NullabilityInfoContext();
        // Value-type members (numbers, booleans, bytes) cannot hold a nil, so they are not visited at all.
        return t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => !p.PropertyType.IsValueType)
            .Select(p => (Property: p, Key: p.GetCustomAttribute<KeyAttribute>()?.StringKey))
            .Where(p => p.Key is not null)
            .Select(p => new Member(p.Key!, p.Property, context.Create(p.Property)))
            .ToArray();
    });
}
