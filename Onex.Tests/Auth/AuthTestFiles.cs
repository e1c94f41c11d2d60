using Onex.RegistryNode.Auth;

namespace Onex.Tests.Auth;

/// <summary>An auth file in a directory of its own with tokens for two tenants (a, b) and an admin (tenant ops).</summary>
internal sealed class AuthTestFiles : IDisposable
{
    public AuthTestFiles(TenantQuotas? quotasOfA = null)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("onex-auth-");
        Path = System.IO.Path.Combine(Directory.FullName, "auth.json");
        ReaderA = AuthFileEditor.AddToken(Path, "a", AuthRoles.Reader, "a-reader");
        NodeA = AuthFileEditor.AddToken(Path, "a", AuthRoles.Node, "a-node");
        NodeB = AuthFileEditor.AddToken(Path, "b", AuthRoles.Node, "b-node");
        ReaderB = AuthFileEditor.AddToken(Path, "b", AuthRoles.Reader, "b-reader");
        Admin = AuthFileEditor.AddToken(Path, "ops", AuthRoles.Admin, "ops-admin");
        if (quotasOfA is not null)
        {
            var file = AuthConfiguration.Load(Path).File;
            var tenants = file.Tenants.Select(t => t.Name == "a" ? t with { Quotas = quotasOfA } : t).ToList();
            File.WriteAllText(Path, System.Text.Json.JsonSerializer.Serialize(file with { Tenants = tenants }, AuthFile.Json));
        }
    }

    public DirectoryInfo Directory { get; }
    public string Path { get; }
    public string ReaderA { get; }
    public string NodeA { get; }
    public string NodeB { get; }
    public string ReaderB { get; }
    public string Admin { get; }

    public IEnumerable<string> AllTokens => [ReaderA, NodeA, NodeB, ReaderB, Admin];

    public void Dispose() => Directory.Delete(recursive: true);
}
