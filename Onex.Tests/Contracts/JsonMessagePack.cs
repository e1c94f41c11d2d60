using System.Buffers;
using System.Text.Json;
using MessagePack;

namespace Onex.Tests.Contracts;

/// <summary>
/// Converts between the wire form (MessagePack) and the JSON form the schemas describe. MessagePack bin becomes a
/// base64 string in JSON (MessagePackSerializer.ConvertToJson does that); going back, the keys named in
/// <c>binaryKeys</c> turn base64 strings into bin again, as the OnexEvent schema documents for <c>payload</c>.
/// </summary>
internal static class JsonMessagePack
{
    public static string ToJson(ReadOnlyMemory<byte> messagePack) => MessagePackSerializer.ConvertToJson(messagePack);

    public static byte[] FromJson(JsonElement json, params string[] binaryKeys)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        Write(ref writer, json, binaryKeys, topLevel: true);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static void Write(ref MessagePackWriter writer, JsonElement json, string[] binaryKeys, bool topLevel)
    {
        switch (json.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteMapHeader(json.EnumerateObject().Count());
                foreach (var property in json.EnumerateObject())
                {
                    writer.Write(property.Name);
                    if (topLevel && binaryKeys.Contains(property.Name) && property.Value.ValueKind == JsonValueKind.String)
                        writer.Write(Convert.FromBase64String(property.Value.GetString()!));
                    else
                        Write(ref writer, property.Value, binaryKeys, topLevel: false);
                }
                break;
            case JsonValueKind.Array:
                writer.WriteArrayHeader(json.GetArrayLength());
                foreach (var item in json.EnumerateArray()) Write(ref writer, item, binaryKeys, topLevel: false);
                break;
            case JsonValueKind.String: writer.Write(json.GetString()); break;
            case JsonValueKind.Number:
                if (json.TryGetInt64(out var integer)) writer.Write(integer);
                else writer.Write(json.GetDouble());
                break;
            case JsonValueKind.True: writer.Write(true); break;
            case JsonValueKind.False: writer.Write(false); break;
            case JsonValueKind.Null: writer.WriteNil(); break;
            default: throw new ArgumentException($"Unexpected JSON value kind {json.ValueKind}.");
        }
    }
}
