using System.IO.Compression;
using System.Xml.Linq;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Packaging;

/// <summary>What <c>dotnet pack</c> makes: library packages with real metadata, the onex tool, Onex.Testing usable from a fresh project.</summary>
public class PackageTests
{
    private static readonly string[] Libraries = ["Onex.Core", "Onex.Transports", "Onex.RegistryNode", "Onex.Extensions.Hosting", "Onex.Testing"];

    [TestCaseSource(nameof(Libraries))]
    public async Task Each_library_package_carries_real_metadata_docs_and_symbols(string id)
    {
        var artifacts = await PackedArtifacts.FolderAsync();
        var version = PackedArtifacts.Version;
        var package = Path.Combine(artifacts, $"{id}.{version}.nupkg");
        Assert.That(File.Exists(package), Is.True, $"no {Path.GetFileName(package)} in {string.Join(", ", Directory.GetFiles(artifacts).Select(Path.GetFileName))}");
        Assert.That(File.Exists(Path.ChangeExtension(package, ".snupkg")), Is.True, "no symbol package");
        using var zip = ZipFile.OpenRead(package);
        var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
        string? Meta(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Multiple(() =>
        {
            Assert.That(Meta("version"), Is.EqualTo(version));
            Assert.That(Meta("description"), Is.Not.Empty.And.Not.EqualTo("Package Description"));
            Assert.That(Meta("authors"), Is.Not.Empty.And.Not.EqualTo(id), "authors default to the package id");
            Assert.That(Meta("license"), Is.EqualTo("MIT"));
            Assert.That(nuspec.Descendants().Single(e => e.Name.LocalName == "repository").Attribute("url")?.Value, Does.StartWith("https://"));
            Assert.That(Meta("tags"), Does.Contain("onexbus"));
            Assert.That(Meta("readme"), Is.EqualTo("README.md"));
            Assert.That(zip.Entries.Select(e => e.FullName), Does.Contain("README.md").And.Contain($"lib/net10.0/{id}.dll").And.Contain($"lib/net10.0/{id}.xml"));
        });
        // The package's own README (what this package is for), not the repository's.
        using var readme = new StreamReader(zip.GetEntry("README.md")!.Open());
        Assert.That(await readme.ReadLineAsync(), Does.StartWith("# ").And.Contain(id));
    }

    [Test]
    public async Task The_onex_tool_installs_from_the_packages_and_prints_its_version()
    {
        var artifacts = await PackedArtifacts.FolderAsync();
        var (config, environment) = PackedArtifacts.NuGetSetup(artifacts);
        var tools = PackedArtifacts.Scratch("tools");
        var install = await ChildProcess.RunAsync(ChildProcess.Dotnet,
            ["tool", "install", "--tool-path", tools, "--add-source", artifacts, "--configfile", config, "--version", PackedArtifacts.Version, "onex"],
            TimeSpan.FromMinutes(3), environment: environment);
        Assert.That(install.ExitCode, Is.Zero, install.Describe("dotnet tool install"));

        var version = await ChildProcess.RunAsync(Path.Combine(tools, "onex"), ["--version"], TimeSpan.FromMinutes(1));
        Assert.That(version.ExitCode, Is.Zero, version.Describe("onex --version"));
        Assert.That(version.Output.Trim(), Does.StartWith(PackedArtifacts.Version));
    }

    [Test]
    public async Task A_fresh_dotnet_new_nunit_project_uses_the_packed_Onex_Testing()
    {
        var artifacts = await PackedArtifacts.FolderAsync();
        var project = PackedArtifacts.Scratch("consumer");
        var (_, environment) = PackedArtifacts.NuGetSetup(artifacts, project);
        var limit = TimeSpan.FromMinutes(5);
        var created = await ChildProcess.RunAsync(ChildProcess.Dotnet, ["new", "nunit", "-n", "Consumer", "-o", project, "--no-restore"], limit, environment: environment);
        Assert.That(created.ExitCode, Is.Zero, created.Describe("dotnet new nunit"));
        var csproj = Path.Combine(project, "Consumer.csproj");
        var xml = XDocument.Load(csproj);
        xml.Root!.Add(new XElement("ItemGroup", new XElement("PackageReference", new XAttribute("Include", "Onex.Testing"), new XAttribute("Version", PackedArtifacts.Version))));
        xml.Save(csproj);
        foreach (var file in Directory.GetFiles(project, "*.cs")) File.Delete(file);
        // The sample test of docs/samples/testing.md, as a user would copy it.
        File.Copy(Path.Combine(PackedArtifacts.RepositoryRoot, "samples", "Testing", "OrdersTests.cs"), Path.Combine(project, "OrdersTests.cs"));

        var restore = await ChildProcess.RunAsync(ChildProcess.Dotnet, ["restore", project], limit, environment: environment);
        Assert.That(restore.ExitCode, Is.Zero, restore.Describe("dotnet restore (NU1605 here is the NUnit version clash)"));
        Assert.That(restore.Output + restore.Error, Does.Not.Contain("NU1605"));

        var test = await ChildProcess.RunAsync(ChildProcess.Dotnet, ["test", project, "--no-restore"], limit, environment: environment);
        Assert.That(test.ExitCode, Is.Zero, test.Describe("dotnet test of the fresh project"));
        Assert.That(test.Output, Does.Match(@"Passed:\s+2"), test.Describe("dotnet test of the fresh project"));
    }
}
