using NJsonSchema;
using NJsonSchema.References;
using Onex.Errors;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Tools;

/// <summary>Parses a tool's JSON Schema with NJsonSchema, turning every failure into SCHEMA_INVALID that says where.</summary>
internal static class SchemaLoader
{
    /// <summary>
    /// Loads <paramref name="json"/> (already checked to be strict JSON). <paramref name="which"/> is
    /// <c>input</c> or <c>output</c>, named in the error. References outside the document are refused: the
    /// registry never reads files or the network on behalf of a request.
    /// </summary>
    public static JsonSchema Load(string json, string which)
    {
        // NJsonSchema's API is async only; nothing here does I/O (external references are refused), so it
        // completes synchronously. Clearing the poller's synchronization context rules out a self-deadlock.
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            return JsonSchema.FromJsonAsync(json, documentPath: null, ResolverFor, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (OnexException)
        {
            throw;
        }
        catch (Newtonsoft.Json.JsonReaderException ex)
        {
            throw Invalid(which, ex.Message, ex.LineNumber, ex.LinePosition);
        }
        catch (Newtonsoft.Json.JsonSerializationException ex)
        {
            throw Invalid(which, ex.Message, ex.LineNumber, ex.LinePosition);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException or FormatException
                                       or InvalidCastException or NullReferenceException or KeyNotFoundException)
        {
            throw Invalid(which, Innermost(ex).Message, null, null);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    /// <summary>SCHEMA_INVALID naming the schema and, when known, the line and position (1-based).</summary>
    public static SchemaInvalidException Invalid(string which, string reason, long? line, long? position, string? pointer = null)
    {
        var details = new List<(string, string)> { ("schema", which), ("field", which + "Schema"), ("reason", reason) };
        if (pointer is not null) details.Add(("pointer", pointer));
        if (line is not null) details.Add(("line", line.Value.ToString()));
        if (position is not null) details.Add(("position", position.Value.ToString()));
        var where = line is null ? "" : $" at line {line}, position {position}";
        return (SchemaInvalidException)Reject.Contract(ErrorCodes.SchemaInvalid, $"The {which} schema is not a valid JSON Schema{where}: {reason}", details.ToArray());
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null) ex = ex.InnerException;
        return ex;
    }

    private static JsonReferenceResolver ResolverFor(JsonSchema schema) =>
        new LocalReferencesOnly(new JsonSchemaAppender(schema, new DefaultTypeNameGenerator()));

    private sealed class LocalReferencesOnly(JsonSchemaAppender appender) : JsonReferenceResolver(appender)
    {
        public override Task<IJsonReference> ResolveFileReferenceAsync(string filePath, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException($"External reference '{filePath}' is not allowed: a tool schema must be self-contained.");

        public override Task<IJsonReference> ResolveUrlReferenceAsync(string url, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException($"External reference '{url}' is not allowed: a tool schema must be self-contained.");
    }
}
