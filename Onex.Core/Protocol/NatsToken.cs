using System.Text;

namespace Onex.Protocol;

/// <summary>
/// One NATS subject token (and key-value key token) for any text: the host in a registry's request subject
/// (PROTOCOL.md 18.2) and every token of the cluster bucket's keys (docs/CLUSTER.md). NATS splits subjects at <c>.</c>,
/// gives <c>*</c> and <c>&gt;</c> wildcard meaning, and key-value keys allow only <c>A-Z a-z 0-9 - _ = / .</c>; so
/// <c>A-Z a-z 0-9 -</c> stay and every other UTF-8 byte is written <c>_XX</c> (upper-case hex). The result is never
/// empty, holds only <c>A-Z a-z 0-9 - _</c>, and two different texts never share a token (<see cref="Unescape"/> undoes
/// it exactly). Escaping never writes <c>=</c> or <c>/</c>, which leaves those for tokens of the project's own.
/// </summary>
public static class NatsToken
{
    // Strict: a lone surrogate is not text two names could be told apart by (both would become U+FFFD).
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The token for <paramref name="text"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="text"/> is empty or not well-formed UTF-16 (a lone surrogate).</exception>
    public static string Escape(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        byte[] bytes;
        try
        {
            bytes = Utf8.GetBytes(text);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException("The text holds a lone surrogate; it has no UTF-8 form to escape.", nameof(text), ex);
        }
        var builder = new StringBuilder(bytes.Length + 8);
        foreach (var b in bytes)
        {
            if (Stays(b)) builder.Append((char)b);
            else builder.Append('_').Append(Hex[b >> 4]).Append(Hex[b & 0xF]);
        }
        return builder.ToString();
    }

    /// <summary>The text <paramref name="token"/> was escaped from, or null when <see cref="Escape"/> never writes that token.</summary>
    public static string? Unescape(string token)
    {
        if (string.IsNullOrEmpty(token)) return null;
        var bytes = new byte[token.Length];
        var count = 0;
        for (var i = 0; i < token.Length; i++)
        {
            var c = token[i];
            if (c == '_')
            {
                if (i + 2 >= token.Length) return null;
                var high = Hex.IndexOf(token[i + 1]);
                var low = Hex.IndexOf(token[i + 2]);
                if (high < 0 || low < 0) return null;
                var b = (byte)(high << 4 | low);
                if (Stays(b)) return null; // a byte that stays is never escaped: not a token Escape writes
                bytes[count++] = b;
                i += 2;
            }
            else if (c < 0x80 && Stays((byte)c)) bytes[count++] = (byte)c;
            else return null;
        }
        try
        {
            return Utf8.GetString(bytes, 0, count);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private const string Hex = "0123456789ABCDEF";

    private static bool Stays(byte b) => b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9' or (byte)'-';
}
