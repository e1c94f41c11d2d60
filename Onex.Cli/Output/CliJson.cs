using System.Text.Json;
using System.Text.Json.Serialization;

namespace Onex.Cli.Output;

/// <summary>JSON as the CLI prints it: camelCase names (the same as the protocol's), enums as camelCase strings.</summary>
internal static class CliJson
{
    public static JsonSerializerOptions Indented { get; } = Create(indented: true);

    /// <summary>One document per line, for streams (<c>onex watch --json</c>) and for output scripts read line by line.</summary>
    public static JsonSerializerOptions Compact { get; } = Create(indented: false);

    public static string Serialize<T>(T value, bool indented = true) =>
        JsonSerializer.Serialize(value, indented ? Indented : Compact);

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = indented,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
            // Output goes to terminals and scripts, never into HTML: keep '>' and '+' readable in topics and patterns.
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
