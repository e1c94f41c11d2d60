using System.Xml.Linq;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Packaging;

/// <summary>
/// <c>dotnet pack</c> of the solution, once per test run, into a temporary folder (removed at the end of the run):
/// shared by every packaging test. Packs the Release build the test command made (<c>--no-build</c>).
/// </summary>
[SetUpFixture]
public sealed class PackedArtifacts
{
    private static readonly Lazy<Task<string>> Packed = new(PackAsync);
    private static string? _root;

    /// <summary>The folder holding the packages.</summary>
    public static Task<string> FolderAsync() => Packed.Value;

    /// <summary>A scratch folder inside this run's packaging folder.</summary>
    public static string Scratch(string name)
    {
        var path = Path.Combine(Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>The version every package carries: the one VersionPrefix in Directory.Build.props.</summary>
    public static string Version { get; } =
        XDocument.Load(Path.Combine(RepositoryRoot, "Directory.Build.props")).Descendants("VersionPrefix").Single().Value;

    private static string Root => _root ??= Directory.CreateTempSubdirectory("onex-packaging-").FullName;

    /// <summary>
    /// An isolated NuGet set-up for a child restore: packages go to a folder of this run (so packages of the same version
    /// from an earlier run cannot be taken from the machine's cache), while the machine's packages folder serves as a
    /// read-only fallback for everything else.
    /// </summary>
    /// <remarks>The nuget.config goes to <paramref name="directory"/> (a new scratch folder when null); in a project's
    /// folder it adds to the machine's sources instead of replacing them.</remarks>
    public static (string ConfigFile, Dictionary<string, string?> Environment) NuGetSetup(string artifacts, string? directory = null)
    {
        var machine = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var config = Path.Combine(directory ?? Scratch("nuget"), "nuget.config");
        File.WriteAllText(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="onex-artifacts" value="{artifacts}" />
              </packageSources>
              <fallbackPackageFolders>
                <add key="machine" value="{machine}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        var environment = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = Path.Combine(Root, "packages"), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" };
        return (config, environment);
    }

    private static async Task<string> PackAsync()
    {
        var output = Path.Combine(Root, "artifacts");
        var result = await ChildProcess.RunAsync(ChildProcess.Dotnet,
            ["pack", Path.Combine(RepositoryRoot, "OnexBus.sln"), "-c", "Release", "--no-build", "--nologo", "-o", output], TimeSpan.FromMinutes(5));
        Assert.That(result.ExitCode, Is.Zero, result.Describe("dotnet pack"));
        return output;
    }

    [OneTimeTearDown]
    public void RemoveFolder()
    {
        if (_root is null) return;
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A process of a failed test may still hold a file; the temporary folder is the OS's to clean then.
        }
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "OnexBus.sln"))) return directory.FullName;
        throw new InvalidOperationException($"no OnexBus.sln above {AppContext.BaseDirectory}");
    }
}
