using Onex.RegistryNode.Auth;

namespace Onex.Benchmarks.Fuzz;

/// <summary>One tenant of <see cref="FuzzAuthFile"/>: its name and a token of each role.</summary>
internal sealed record FuzzTenant(string Name, string Reader, string Node, string Admin)
{
    /// <summary>The token of <paramref name="role"/>, with the name <see cref="FuzzAuthFile"/> gave it.</summary>
    public (string Token, string Name) Of(string role) => role switch
    {
        AuthRoles.Reader => (Reader, $"{Name}-reader"),
        AuthRoles.Node => (Node, $"{Name}-node"),
        _ => (Admin, $"{Name}-admin"),
    };
}

/// <summary>
/// An auth file for a fuzzed node (issue 14): tenants <c>a</c> and <c>b</c>, each with a reader, a node and an admin
/// token, written by the code behind <c>onex auth add-token</c> (<see cref="AuthFileEditor"/>) into a temporary
/// directory that <see cref="Dispose"/> deletes.
/// </summary>
internal sealed class FuzzAuthFile : IDisposable
{
    private readonly DirectoryInfo _directory;

    public FuzzAuthFile()
    {
        _directory = Directory.CreateTempSubdirectory("onex-fuzz-auth-");
        Path = System.IO.Path.Combine(_directory.FullName, "auth.json");
        A = Tenant("a");
        B = Tenant("b");
    }

    /// <summary>The file to pass to the node as <c>--auth-file</c>.</summary>
    public string Path { get; }

    public FuzzTenant A { get; }

    public FuzzTenant B { get; }

    /// <summary>Every token the file knows (none of them may ever appear in a reply).</summary>
    public IReadOnlyList<string> Tokens => [A.Reader, A.Node, A.Admin, B.Reader, B.Node, B.Admin];

    private FuzzTenant Tenant(string name) => new(
        name,
        AuthFileEditor.AddToken(Path, name, AuthRoles.Reader, $"{name}-reader"),
        AuthFileEditor.AddToken(Path, name, AuthRoles.Node, $"{name}-node"),
        AuthFileEditor.AddToken(Path, name, AuthRoles.Admin, $"{name}-admin"));

    public void Dispose() => _directory.Delete(recursive: true);
}
