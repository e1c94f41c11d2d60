using Semver;

namespace Onex.RegistryNode.Tools;

/// <summary>Tool contract versions: strict Semantic Versioning 2.0.0 (the Semver library), ordered by precedence (build metadata ignored).</summary>
internal static class ToolVersions
{
    /// <summary>Longest version text accepted (a bound on what a peer can make the registry parse and keep).</summary>
    public const int MaxLength = 256;

    /// <summary>Parses <c>MAJOR.MINOR.PATCH[-pre][+build]</c>; false when the text is not a semantic version.</summary>
    public static bool TryParse(string? text, out SemVersion version)
    {
        version = null!;
        return text is { Length: <= MaxLength } && SemVersion.TryParse(text, SemVersionStyles.Strict, out version!);
    }

    /// <summary>Orders by precedence: <c>1.10.0</c> after <c>1.9.0</c>, <c>1.0.0-rc.1</c> before <c>1.0.0</c>.</summary>
    public static IComparer<SemVersion> Precedence => SemVersion.PrecedenceComparer;
}
