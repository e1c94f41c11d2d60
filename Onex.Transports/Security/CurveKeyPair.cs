using NetMQ;

namespace Onex.Transports.Security;

/// <summary>
/// A CurveZMQ long-term key pair (Curve25519): the public key a server hands to its clients and the secret key that
/// never leaves its host. Keys are written in Z85 (40 characters, ZeroMQ RFC 32), as ZeroMQ tools print them.
/// <see cref="ToString"/> shows only the public key.
/// </summary>
public sealed class CurveKeyPair
{
    /// <summary>Length of a Z85-encoded key.</summary>
    public const int Z85Length = 40;

    private CurveKeyPair(string publicKey, string secretKey)
    {
        PublicKey = publicKey;
        SecretKey = secretKey;
    }

    /// <summary>The public key, Z85 (what clients configure as the server key, e.g. <c>ONEX_REGISTRY_SERVER_KEY</c>).</summary>
    public string PublicKey { get; }

    /// <summary>The secret key, Z85. Keep it in a file only its owner can read (<see cref="CurveKeyFile"/>).</summary>
    public string SecretKey { get; }

    /// <summary>A fresh random key pair.</summary>
    public static CurveKeyPair Generate()
    {
        var certificate = new NetMQCertificate();
        return new CurveKeyPair(certificate.PublicKeyZ85, certificate.SecretKeyZ85!);
    }

    /// <summary>The pair of <paramref name="secretKey"/> (Z85); the public key is derived from it.</summary>
    /// <exception cref="FormatException">Not a Z85-encoded 32-byte key.</exception>
    public static CurveKeyPair FromSecretKey(string secretKey)
    {
        Decode(secretKey, "secret key");
        var certificate = NetMQCertificate.CreateFromSecretKey(secretKey);
        return new CurveKeyPair(certificate.PublicKeyZ85, certificate.SecretKeyZ85!);
    }

    /// <summary>
    /// Checks that <paramref name="publicKey"/> is a Z85-encoded 32-byte key and returns it trimmed; throws
    /// <see cref="FormatException"/> naming <paramref name="source"/> (an option or variable) otherwise.
    /// </summary>
    public static string CheckPublicKey(string publicKey, string source)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        var trimmed = publicKey.Trim();
        try
        {
            Decode(trimmed, "public key");
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{source}: {ex.Message}");
        }
        return trimmed;
    }

    internal NetMQCertificate ToCertificate() => new(SecretKey, PublicKey);

    /// <inheritdoc/>
    public override string ToString() => $"CURVE key pair, public key {PublicKey}";

    private const string Z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

    /// <summary>Decodes a Z85 key (ZeroMQ RFC 32: groups of 5 characters, each a big-endian base-85 number below 2^32).</summary>
    internal static byte[] Decode(string key, string what)
    {
        if (key is null || key.Length != Z85Length)
            throw new FormatException($"a CURVE {what} is {Z85Length} Z85 characters; got {key?.Length ?? 0}.");
        var bytes = new byte[32];
        for (var group = 0; group < Z85Length / 5; group++)
        {
            ulong value = 0;
            for (var i = 0; i < 5; i++)
            {
                var digit = Z85Alphabet.IndexOf(key[group * 5 + i], StringComparison.Ordinal);
                if (digit < 0) throw new FormatException($"the CURVE {what} is not Z85: '{key[group * 5 + i]}' is not in ZeroMQ's base-85 alphabet.");
                value = value * 85 + (ulong)digit;
            }
            if (value > uint.MaxValue) throw new FormatException($"the CURVE {what} is not Z85: characters {group * 5 + 1}-{group * 5 + 5} exceed 32 bits.");
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(group * 4), (uint)value);
        }
        return bytes;
    }
}
