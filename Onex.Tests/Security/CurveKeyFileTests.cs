using NetMQ;
using Onex.Transports.Security;

namespace Onex.Tests.Security;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class CurveKeyFileTests
{
    private DirectoryInfo _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("onex-keys-");

    [TearDown]
    public void RemoveDirectory() => _directory.Delete(recursive: true);

    [Test]
    public void A_written_key_file_is_the_owners_alone_and_reads_back()
    {
        var path = Path.Combine(_directory.FullName, "node.key");
        var keys = CurveKeyPair.Generate();
        CurveKeyFile.Write(path, keys);
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        var loaded = CurveKeyFile.Load(path);
        Assert.Multiple(() =>
        {
            Assert.That(loaded.Keys.PublicKey, Is.EqualTo(keys.PublicKey));
            Assert.That(loaded.Keys.SecretKey, Is.EqualTo(keys.SecretKey));
            Assert.That(loaded.PermissionProblem, Is.Null);
            Assert.That(File.ReadAllText(path), Does.Contain("curve\n    public-key = \"").And.Contain("secret-key = \""), "ZeroMQ's zcert layout");
        });
    }

    [Test]
    public void An_existing_key_file_is_not_overwritten()
    {
        var path = Path.Combine(_directory.FullName, "node.key");
        CurveKeyFile.Write(path, CurveKeyPair.Generate());
        var before = File.ReadAllText(path);
        Assert.Throws<IOException>(() => CurveKeyFile.Write(path, CurveKeyPair.Generate()));
        Assert.That(File.ReadAllText(path), Is.EqualTo(before));
    }

    [Test]
    public void A_public_key_that_does_not_belong_to_the_secret_key_is_refused()
    {
        var one = CurveKeyPair.Generate();
        var other = CurveKeyPair.Generate();
        var text = $"curve\n    public-key = \"{other.PublicKey}\"\n    secret-key = \"{one.SecretKey}\"\n";
        Assert.That(() => CurveKeyFile.Parse(text, "k"), Throws.TypeOf<FormatException>().With.Message.Contains("does not belong"));
    }

    [TestCase("", "no secret-key")]
    [TestCase("curve\n    secret-key = \"short\"\n", "40")]
    public void A_file_without_a_usable_secret_key_is_refused(string text, string expected) =>
        Assert.That(() => CurveKeyFile.Parse(text, "k"), Throws.TypeOf<FormatException>().With.Message.Contains(expected));

    [Test]
    public void A_missing_file_names_the_command_that_creates_one()
    {
        var path = Path.Combine(_directory.FullName, "absent.key");
        Assert.That(() => CurveKeyFile.Load(path), Throws.TypeOf<FileNotFoundException>().With.Message.Contains("onex auth keygen"));
    }

    [Test]
    public void Z85_decoding_agrees_with_netmq()
    {
        for (var i = 0; i < 20; i++)
        {
            var certificate = new NetMQCertificate();
            Assert.That(CurveKeyPair.Decode(certificate.PublicKeyZ85, "public key"), Is.EqualTo(certificate.PublicKey));
            Assert.That(CurveKeyPair.FromSecretKey(certificate.SecretKeyZ85!).PublicKey, Is.EqualTo(certificate.PublicKeyZ85));
        }
    }
}
