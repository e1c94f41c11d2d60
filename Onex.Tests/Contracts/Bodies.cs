using System.Reflection;
using System.Runtime.ExceptionServices;
using Onex.Protocol;

namespace Onex.Tests.Contracts;

/// <summary>Calls the generic <see cref="RegistryCodec"/> body methods for a type known only at run time.</summary>
internal static class Bodies
{
    public static byte[] Serialize(Type type, object body) =>
        (byte[])Invoke(nameof(RegistryCodec.SerializeBody), type, body)!;

    public static object Deserialize(Type type, ReadOnlyMemory<byte> bytes) =>
        Invoke(nameof(RegistryCodec.DeserializeBody), type, bytes)!;

    public static object Decode(Type type, RegistryEnvelope envelope) =>
        Invoke(nameof(RegistryCodec.DecodeBody), type, envelope)!;

    public static byte[] Encode(Type type, string requestId, string clientId, object body) =>
        (byte[])Invoke(nameof(RegistryCodec.Encode), type, requestId, clientId, body, ProtocolVersion.Current, null, null, null)!; // no token, no traceparent, no tenant

    private static object? Invoke(string method, Type type, params object?[] args)
    {
        var generic = typeof(RegistryCodec).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Single(m => m.Name == method && m.IsGenericMethodDefinition);
        try
        {
            return generic.MakeGenericMethod(type).Invoke(null, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
    }
}
