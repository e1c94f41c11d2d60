using System.Globalization;
using System.Text.RegularExpressions;

namespace Onex.RegistryNode.Tools;

/// <summary>A Semantic Versioning 2.0.0 version, ordered by the spec's precedence rules (build metadata ignored).</summary>
internal sealed partial record SemanticVersion(long Major, long Minor, long Patch, string[] PreRelease, string Text) : IComparable<SemanticVersion>
{
    [GeneratedRegex(@"^(0|[1-9]\d{0,17})\.(0|[1-9]\d{0,17})\.(0|[1-9]\d{0,17})(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")]
    private static partial Regex Pattern();

    /// <summary>Parses <c>MAJOR.MINOR.PATCH[-pre][+build]</c>; false when the text is not a semantic version.</summary>
    public static bool TryParse(string? text, out SemanticVersion version)
    {
        version = null!;
        if (text is null || text.Length > 256) return false;
        var match = Pattern().Match(text);
        if (!match.Success) return false;
        version = new SemanticVersion(
            long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture),
            long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture),
            long.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture),
            match.Groups[4].Success ? match.Groups[4].Value.Split('.') : [],
            text);
        return true;
    }

    /// <inheritdoc />
    public int CompareTo(SemanticVersion? other)
    {
        if (other is null) return 1;
        var c = Major.CompareTo(other.Major);
        if (c == 0) c = Minor.CompareTo(other.Minor);
        if (c == 0) c = Patch.CompareTo(other.Patch);
        if (c != 0) return c;
        // A version without pre-release identifiers ranks above one with them.
        if (PreRelease.Length == 0) return other.PreRelease.Length == 0 ? 0 : 1;
        if (other.PreRelease.Length == 0) return -1;
        for (var i = 0; i < Math.Min(PreRelease.Length, other.PreRelease.Length); i++)
        {
            c = CompareIdentifier(PreRelease[i], other.PreRelease[i]);
            if (c != 0) return c;
        }
        return PreRelease.Length.CompareTo(other.PreRelease.Length);
    }

    private static int CompareIdentifier(string a, string b)
    {
        var aNumeric = long.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out var an);
        var bNumeric = long.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out var bn);
        if (aNumeric && bNumeric) return an.CompareTo(bn);
        if (aNumeric) return -1;
        if (bNumeric) return 1;
        return string.CompareOrdinal(a, b);
    }
}
