using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Onex.RegistryNode.Auth;

/// <summary>A token the registry recognised: who is calling.</summary>
/// <param name="Tenant">The tenant the token belongs to.</param>
/// <param name="TokenName">The token's name in the auth file (safe to log).</param>
/// <param name="Role">The token's role (<see cref="AuthRoles"/>).</param>
public sealed record AuthCaller(string Tenant, string TokenName, string Role)
{
    /// <summary>True for an <c>admin</c> token: every request, every tenant.</summary>
    public bool IsAdmin => Role == AuthRoles.Admin;
}

/// <summary>
/// A checked, immutable auth file: tokens to look up in constant time, quotas per tenant. Built by
/// <see cref="Load"/> or <see cref="Parse"/>, which refuse a file with a clear message (<see cref="AuthFileException"/>).
/// </summary>
public sealed partial class AuthConfiguration
{
    /// <summary>Most tenants, and most tokens over all tenants, a file may hold (the lookup scans every token).</summary>
    public const int MaxTenants = 1_000, MaxTokens = 10_000;

    /// <summary>Longest token looked up, in characters (generated ones have 48); longer ones are unknown.</summary>
    private const int MaxTokenChars = 1024;

    /// <summary>Largest auth file read, in bytes.</summary>
    public const int MaxFileBytes = 4 * 1024 * 1024;

    private readonly (byte[] Digest, AuthCaller Caller)[] _tokens;

    private AuthConfiguration(AuthFile file, (byte[], AuthCaller)[] tokens)
    {
        File = file;
        _tokens = tokens;
        Quotas = file.Tenants.ToDictionary(t => t.Name, t => t.Quotas ?? new TenantQuotas(), StringComparer.Ordinal);
    }

    /// <summary>The file as read.</summary>
    public AuthFile File { get; }

    /// <summary>Quotas by tenant name (every tenant has an entry; absent limits are null).</summary>
    public IReadOnlyDictionary<string, TenantQuotas> Quotas { get; }

    /// <summary>The number of tokens.</summary>
    public int TokenCount => _tokens.Length;

    /// <summary>
    /// The caller a presented token belongs to, or null. Hashes the token and compares the digest with every
    /// stored one with <see cref="CryptographicOperations.FixedTimeEquals"/>, without stopping at a match, so the time
    /// taken says nothing about which token (or how much of one) matched.
    /// </summary>
    public AuthCaller? Authenticate(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > MaxTokenChars) return null;
        // On the stack: checked on every request, so no garbage per request (the token's bytes are cleared after use).
        Span<byte> bytes = stackalloc byte[System.Text.Encoding.UTF8.GetMaxByteCount(token.Length)];
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        var length = System.Text.Encoding.UTF8.GetBytes(token, bytes);
        SHA256.HashData(bytes[..length], digest);
        CryptographicOperations.ZeroMemory(bytes[..length]);
        AuthCaller? found = null;
        foreach (var (stored, caller) in _tokens)
            if (CryptographicOperations.FixedTimeEquals(stored, digest)) found = caller;
        return found;
    }

    /// <summary>Reads and checks the auth file at <paramref name="path"/>.</summary>
    public static AuthConfiguration Load(string path)
    {
        string text;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new AuthFileException($"auth file {path}: no such file.");
            if (info.Length > MaxFileBytes) throw new AuthFileException($"auth file {path}: {info.Length} bytes, over the limit of {MaxFileBytes}.");
            text = System.IO.File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AuthFileException($"auth file {path}: cannot read it: {ex.Message}", ex);
        }
        return Parse(text, path);
    }

    /// <summary>Checks auth file text; <paramref name="source"/> names it in errors.</summary>
    public static AuthConfiguration Parse(string text, string source)
    {
        AuthFile? file;
        try
        {
            file = JsonSerializer.Deserialize<AuthFile>(text, AuthFile.Json);
        }
        catch (JsonException ex)
        {
            var where = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            throw new AuthFileException($"auth file {source}: not valid JSON for an auth file{where}: {ex.Message}", ex);
        }
        if (file is null) throw new AuthFileException($"auth file {source}: the top level must be an object.");
        return Check(file, source);
    }

    /// <summary>Checks an <see cref="AuthFile"/> (names, roles, hashes, quotas).</summary>
    public static AuthConfiguration Check(AuthFile file, string source)
    {
        void Fail(string field, string problem) => throw new AuthFileException($"auth file {source}: {field}: {problem}");
        if (file.Version != 1) Fail("version", $"{file.Version} is not supported; this registry reads version 1.");
        if (file.Tenants is null) Fail("tenants", "missing.");
        if (file.Tenants!.Count > MaxTenants) Fail("tenants", $"{file.Tenants.Count} tenants, over the limit of {MaxTenants}.");
        var tenants = new HashSet<string>(StringComparer.Ordinal);
        var hashes = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var tokens = new List<(byte[], AuthCaller)>();
        for (var i = 0; i < file.Tenants.Count; i++)
        {
            var tenant = file.Tenants[i];
            var at = $"tenants[{i}]";
            if (tenant is null) Fail(at, "null.");
            if (string.IsNullOrEmpty(tenant!.Name) || !NamePattern().IsMatch(tenant.Name))
                Fail(at + ".name", $"'{tenant.Name}' is not a tenant name: 1 to 64 characters from A-Z a-z 0-9 . _ -");
            if (!tenants.Add(tenant.Name)) Fail(at + ".name", $"tenant '{tenant.Name}' appears twice.");
            CheckQuotas(tenant.Quotas, at + ".quotas", Fail);
            if (tenant.Tokens is null) Fail(at + ".tokens", "missing.");
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (var j = 0; j < tenant.Tokens!.Count; j++)
            {
                var token = tenant.Tokens[j];
                var tat = $"{at}.tokens[{j}]";
                if (token is null) Fail(tat, "null.");
                if (string.IsNullOrEmpty(token!.Name) || !NamePattern().IsMatch(token.Name))
                    Fail(tat + ".name", $"'{token.Name}' is not a token name: 1 to 64 characters from A-Z a-z 0-9 . _ -");
                if (!names.Add(token.Name)) Fail(tat + ".name", $"token '{token.Name}' appears twice in tenant '{tenant.Name}'.");
                if (!AuthRoles.All.Contains(token.Role)) Fail(tat + ".role", $"'{token.Role}' is not a role; use reader, node or admin.");
                if (token.Hash is null || !AccessTokens.IsHash(token.Hash))
                    Fail(tat + ".hash", "not sha256: followed by 64 hex digits (the file stores hashes, never tokens; onex auth add-token writes them).");
                if (hashes.TryGetValue(token.Hash!, out var other)) Fail(tat + ".hash", $"the same token is also {other}.");
                hashes[token.Hash!] = $"{tenant.Name}/{token.Name}";
                tokens.Add((AccessTokens.DigestOf(token.Hash!), new AuthCaller(tenant.Name, token.Name, token.Role)));
            }
        }
        if (tokens.Count > MaxTokens) Fail("tenants", $"{tokens.Count} tokens, over the limit of {MaxTokens}.");
        return new AuthConfiguration(file, tokens.ToArray());
    }

    private static void CheckQuotas(TenantQuotas? quotas, string at, Action<string, string> fail)
    {
        if (quotas is null) return;
        void NotNegative(long? value, string name)
        {
            if (value is < 0) fail($"{at}.{name}", $"{value} must be 0 or more (absent: unlimited).");
        }
        NotNegative(quotas.Leases, "leases");
        NotNegative(quotas.Nodes, "nodes");
        NotNegative(quotas.Buses, "buses");
        NotNegative(quotas.Tools, "tools");
        NotNegative(quotas.SchemaBytes, "schemaBytes");
        if (quotas.RequestsPerSecond is < 1) fail($"{at}.requestsPerSecond", $"{quotas.RequestsPerSecond} must be 1 or more (absent: unlimited).");
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex NamePattern();
}

/// <summary>An auth file that cannot be used; the message names the file, the field and the fix.</summary>
public sealed class AuthFileException(string message, Exception? innerException = null) : Exception(message, innerException);
