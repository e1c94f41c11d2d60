using System.Globalization;

namespace Onex.RegistryNode.Hosting;

/// <summary>Durations on the command line: a number with a unit, <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c> (e.g. <c>500ms</c>, <c>30s</c>); a bare number is seconds (<c>--default-ttl 30</c> is 30 s, as a person means it).</summary>
internal static class Durations
{
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 1.0)
            : text.EndsWith('s') ? (text[..^1], 1000.0)
            : text.EndsWith('m') ? (text[..^1], 60_000.0)
            : text.EndsWith('h') ? (text[..^1], 3_600_000.0)
            : (text, 1000.0);
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value * unit > TimeSpan.MaxValue.TotalMilliseconds / 2)
            return false;
        duration = TimeSpan.FromMilliseconds(value * unit);
        return true;
    }

    public static string Format(TimeSpan duration) =>
        duration.TotalMilliseconds % 1000 != 0 ? $"{duration.TotalMilliseconds}ms"
        : duration.TotalSeconds % 3600 == 0 ? $"{duration.TotalHours}h"
        : duration.TotalSeconds % 60 == 0 ? $"{duration.TotalMinutes}m"
        : $"{duration.TotalSeconds}s";
}
