using System.Security.Cryptography;
using System.Text;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// Generates access tokens and the hashes the auth file stores instead of them. A token is 256 random bits
/// (base64url, prefixed <c>onex_</c>); its hash is <c>sha256:</c> + the hex SHA-256 of the token's UTF-8 bytes.
/// A plain SHA-256 is enough here (no salt, no slow KDF): the token is random and 256 bits long, so there is no
/// dictionary to attack, and checking it on every request must stay cheap.
/// </summary>
public static class AccessTokens
{
    /// <summary>The prefix of every generated token (so a leaked one is recognisable by secret scanners).</summary>
    public const string Prefix = "onex_";

    /// <summary>The prefix of every hash in the auth file.</summary>
    public const string HashPrefix = "sha256:";

    /// <summary>A new token: <c>onex_</c> + 32 random bytes in base64url without padding (43 characters).</summary>
    public static string Generate() => Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>The hash stored in the auth file for <paramref name="token"/>: <c>sha256:</c> + 64 lowercase hex digits.</summary>
    public static string Hash(string token) => HashPrefix + Convert.ToHexStringLower(Digest(token));

    /// <summary>The raw SHA-256 of the token's UTF-8 bytes.</summary>
    internal static byte[] Digest(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>True when <paramref name="hash"/> has the form <see cref="Hash"/> writes (upper- or lowercase hex).</summary>
    public static bool IsHash(string hash) =>
        hash.Length == HashPrefix.Length + 64 && hash.StartsWith(HashPrefix, StringComparison.Ordinal)
        && hash.AsSpan(HashPrefix.Length).ContainsAnyExcept("0123456789abcdefABCDEF") == false;

    /// <summary>The 32 digest bytes of a hash in the auth file's form.</summary>
    internal static byte[] DigestOf(string hash) => Convert.FromHexString(hash.AsSpan(HashPrefix.Length));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
