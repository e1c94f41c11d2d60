using System.Globalization;
using System.Text.RegularExpressions;

namespace Onex.Tests.Http;

/// <summary>Reads samples out of a Prometheus text exposition (what <c>/metrics</c> serves).</summary>
internal static partial class PrometheusText
{
    /// <summary>
    /// The value of the one sample named <paramref name="name"/> whose labels include every pair of
    /// <paramref name="labels"/>; null when there is none. Fails when several match.
    /// </summary>
    public static double? Value(string exposition, string name, params (string Name, string Value)[] labels)
    {
        var found = new List<(string Line, double Value)>();
        foreach (var raw in exposition.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#') continue;
            var match = Sample().Match(line);
            if (!match.Success || match.Groups["name"].Value != name) continue;
            var present = Label().Matches(match.Groups["labels"].Value).ToDictionary(m => m.Groups["k"].Value, m => m.Groups["v"].Value);
            if (labels.All(l => present.TryGetValue(l.Name, out var v) && v == l.Value))
                found.Add((line, double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }
        Assert.That(found, Has.Count.LessThanOrEqualTo(1), $"several samples match {name}: {string.Join(" | ", found.Select(f => f.Line))}");
        return found.Count == 0 ? null : found[0].Value;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)(\s+\S+)?$")]
    private static partial Regex Sample();

    [GeneratedRegex(@"(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<v>(\\.|[^""\\])*)""")]
    private static partial Regex Label();
}
