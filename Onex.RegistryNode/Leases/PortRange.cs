using System.Globalization;

namespace Onex.RegistryNode.Leases;

/// <summary>An inclusive range of port numbers, written <c>first-last</c> (e.g. <c>20000-29999</c>).</summary>
/// <param name="First">The lowest port.</param>
/// <param name="Last">The highest port.</param>
public readonly record struct PortRange(int First, int Last)
{
    /// <summary>How many ports the range holds (0 when <see cref="Last"/> is below <see cref="First"/>).</summary>
    public int Count => Last >= First ? Last - First + 1 : 0;

    /// <summary>True when <paramref name="port"/> lies in the range.</summary>
    public bool Contains(int port) => port >= First && port <= Last;

    /// <summary>Parses <c>first-last</c>; both ends between 1 and 65535, first not above last.</summary>
    /// <exception cref="FormatException">The text is not a valid range.</exception>
    public static PortRange Parse(string text)
    {
        if (!TryParse(text, out var range))
            throw new FormatException($"'{text}' is not a port range: expected first-last with 1 <= first <= last <= 65535, e.g. 20000-29999.");
        return range;
    }

    /// <summary>Parses <c>first-last</c>; false when the text is not a valid range.</summary>
    public static bool TryParse(string? text, out PortRange range)
    {
        range = default;
        var parts = text?.Split('-', StringSplitOptions.TrimEntries);
        if (parts is not { Length: 2 }
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            || first < 1 || last > 65535 || first > last)
            return false;
        range = new PortRange(first, last);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{First}-{Last}";
}
