using System.Text.RegularExpressions;
using CsCheck;
using Onex.Protocol;

namespace Onex.Tests.Protocol;

/// <summary>
/// <see cref="NatsToken"/>, the one escaping of text into a NATS subject token and key-value key token (request
/// subjects, cluster bucket keys): injective, undone exactly, and only characters valid in both.
/// </summary>
public class NatsTokenPropertyTests
{
    // One subject token (no '.', no wildcard, no whitespace) whose characters are all allowed in a key-value key.
    private static readonly Regex ValidToken = new("^[A-Za-z0-9_-]+$", RegexOptions.CultureInvariant);

    // Well-formed text, heavy on what names look like and on what must be escaped: separators, wildcards, '_' itself,
    // '=', whitespace, control characters, accents and characters outside the BMP.
    private static readonly Gen<string> Text = Gen.Frequency(
            (4, Gen.Char['a', 'z']),
            (2, Gen.Char.AlphaNumeric),
            (3, Gen.OneOf('.', '*', '>', '_', '-', '=', '/', '@', ' ', '\t', '\n', '\0', '%', 'é', 'ü', '中', '\u001F', '\uFFFD')),
            (1, Gen.Char.Where(c => !char.IsSurrogate(c))))
        .Array[1, 6]
        .Select(chars => new string(chars))
        .SelectMany(text => Gen.Frequency((5, Gen.Const(text)), (1, Gen.Const(text + "😀"))));

    [Test]
    public void Escaped_text_is_one_valid_subject_and_key_token()
    {
        Text.Sample(text =>
        {
            var token = NatsToken.Escape(text);
            return ValidToken.IsMatch(token);
        });
    }

    [Test]
    public void Unescape_undoes_escape_exactly()
    {
        Text.Sample(text => NatsToken.Unescape(NatsToken.Escape(text)) == text);
    }

    [Test]
    public void Two_different_texts_never_share_a_token()
    {
        Gen.Select(Text, Text).Where(p => p.Item1 != p.Item2)
            .Sample((a, b) => NatsToken.Escape(a) != NatsToken.Escape(b));
    }

    [Test]
    public void A_token_unescapes_only_when_escape_writes_it()
    {
        // Arbitrary strings over the token alphabet (lower-case hex, bytes that stay, broken UTF-8 included).
        Gen.OneOf('_', 'A', 'F', 'a', 'f', '0', '9', '3', 'E', 'C', '-').Array[1, 9].Select(c => new string(c)).Sample(token =>
        {
            var text = NatsToken.Unescape(token);
            return text is null || NatsToken.Escape(text) == token;
        });
    }

    [Test]
    public void Text_without_a_UTF8_form_is_refused()
    {
        // Built in code: attribute arguments are stored as UTF-8, which would turn a lone surrogate into U+FFFD.
        foreach (var text in new[] { "", "\uD800", "a" + (char)0xDC00 + "b" })
            Assert.Throws<ArgumentException>(() => NatsToken.Escape(text), $"'{text}' (empty, or with a lone surrogate) has no token");
    }

    [Test]
    public void The_request_subject_and_the_bucket_keys_escape_alike()
    {
        Assert.That(RegistryNatsService.RequestSubject("db-1.eu"), Is.EqualTo("onex.registry." + NatsToken.Escape("db-1.eu") + ".requests"));
        Assert.That(NatsToken.Escape("db-1.eu"), Is.EqualTo("db-1_2Eeu"), "the example of PROTOCOL.md 18.2");
        Assert.That(Onex.RegistryNode.Cluster.ClusterKeys.Heartbeat("db-1.eu"), Is.EqualTo("default.db-1_2Eeu.host.heartbeat"), "the bucket's host token");
    }
}
