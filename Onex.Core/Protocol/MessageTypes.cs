using System.Collections.Frozen;

namespace Onex.Protocol;

/// <summary>
/// The <c>messageType</c> names used in <see cref="RegistryEnvelope"/>: each is the C# type name of the body,
/// and the JSON Schema of the body is <c>contracts/{name}.schema.json</c>.
/// </summary>
public static class MessageTypes
{
    private static readonly FrozenDictionary<Type, string> NamesByType = new[]
    {
        typeof(PortRequest), typeof(PortGrant), typeof(PortLease), typeof(LeaseRenewal), typeof(LeaseRelease),
        typeof(PortConflict), typeof(NodeAnnouncement), typeof(NodeHeartbeat), typeof(NodeDeparture), typeof(NodeRecord),
        typeof(EventBusRegistration), typeof(EventBusDeregistration), typeof(EventBusRecord),
        typeof(ToolContractRegistration), typeof(ToolContractRecord), typeof(ValidatePayload), typeof(ValidationResult),
        typeof(IntrospectionRequest), typeof(IntrospectionResponse), typeof(SnapshotRequest), typeof(RegistrySnapshot),
        typeof(RegistryChange), typeof(RegistryHeartbeat), typeof(Ack), typeof(Error),
        typeof(Watch), typeof(WatchCredit), typeof(WatchCancel), typeof(WatchEvent),
    }.ToFrozenDictionary(t => t, t => t.Name);

    private static readonly FrozenDictionary<string, Type> TypesByName =
        NamesByType.ToFrozenDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);

    /// <summary>Every message type name with its C# type.</summary>
    public static IReadOnlyDictionary<string, Type> All => TypesByName;

    /// <summary>The wire name of <typeparamref name="T"/>.</summary>
    public static string Of<T>() => NameOf(typeof(T));

    /// <summary>The wire name of <paramref name="type"/>.</summary>
    public static string NameOf(Type type) =>
        NamesByType.TryGetValue(type, out var name) ? name : throw new ArgumentException($"{type.Name} is not a protocol message.", nameof(type));

    /// <summary>The C# type for a wire name, or null when unknown.</summary>
    public static Type? TypeOf(string name) => TypesByName.GetValueOrDefault(name);
}
