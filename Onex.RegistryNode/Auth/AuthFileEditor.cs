using System.Text.Json;

namespace Onex.RegistryNode.Auth;

/// <summary>Changes an auth file in place (what <c>onex auth add-token</c> does): read, change, check, replace atomically.</summary>
public static class AuthFileEditor
{
    /// <summary>
    /// Generates a token for <paramref name="tenant"/> with <paramref name="role"/> named <paramref name="name"/>,
    /// stores its hash in the file at <paramref name="path"/> (created, owner-only, when missing; the tenant is added
    /// when new) and returns the token, which exists nowhere else. Throws <see cref="AuthFileException"/> when the file
    /// cannot be used or the name is taken. The new file replaces the old one by a rename, so a running node never reads
    /// half of it.
    /// </summary>
    public static string AddToken(string path, string tenant, string role, string name)
    {
        var file = File.Exists(path) ? AuthConfiguration.Load(path).File : new AuthFile();
        var tenants = file.Tenants.ToList();
        var index = tenants.FindIndex(t => t.Name == tenant);
        var entry = index >= 0 ? tenants[index] : new AuthTenant { Name = tenant };
        if (entry.Tokens.Any(t => t.Name == name))
            throw new AuthFileException($"auth file {path}: tenant '{tenant}' already has a token named '{name}'; choose another name, or remove that token first to rotate it.");
        var token = AccessTokens.Generate();
        entry = entry with { Tokens = [.. entry.Tokens, new AuthToken { Name = name, Role = role, Hash = AccessTokens.Hash(token) }] };
        if (index >= 0) tenants[index] = entry;
        else tenants.Add(entry);
        var changed = file with { Tenants = tenants };
        AuthConfiguration.Check(changed, path); // a bad tenant name or role is refused before anything is written

        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var stream = new FileStream(temporary, options))
            {
                JsonSerializer.Serialize(stream, changed, AuthFile.Json);
                stream.WriteByte((byte)'\n');
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(temporary);
            throw new AuthFileException($"auth file {path}: cannot write it: {ex.Message}", ex);
        }
        return token;
    }
}
