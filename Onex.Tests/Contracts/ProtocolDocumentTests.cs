using System.Reflection;
using System.Text.RegularExpressions;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Contracts;

/// <summary>Keeps contracts/PROTOCOL.md honest: its examples, its error catalogue and its fingerprint test vector.</summary>
public partial class ProtocolDocumentTests
{
    private static readonly string ProtocolPath = Path.Combine(AppContext.BaseDirectory, "contracts", "PROTOCOL.md");

    [GeneratedRegex(@"<!-- schema: (\w+) -->\s*```json\n(.*?)\n```", RegexOptions.Singleline)]
    private static partial Regex ExampleBlock();

    public static IEnumerable<TestCaseData> DocumentExampleCases() =>
        ExampleBlock().Matches(File.ReadAllText(ProtocolPath))
            .Select((m, i) => new TestCaseData(m.Groups[1].Value, m.Groups[2].Value).SetArgDisplayNames($"#{i} {m.Groups[1].Value}"));

    public static IEnumerable<TestCaseData> ErrorCodeCases() =>
        typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral)
            .Select(f => (string)f.GetRawConstantValue()!).Select(c => new TestCaseData(c).SetArgDisplayNames(c));

    [Test]
    public void Protocol_document_shows_examples() =>
        Assert.That(DocumentExampleCases().Count(), Is.GreaterThanOrEqualTo(MessageTypes.All.Count),
            "PROTOCOL.md should show at least one JSON example per message type.");

    [TestCaseSource(nameof(DocumentExampleCases))]
    public async Task Protocol_document_example_satisfies_its_schema(string schemaName, string json)
    {
        var errors = await ContractFiles.ValidateAsync(schemaName, json);
        Assert.That(errors, Is.Empty, $"An example in PROTOCOL.md violates {schemaName}.schema.json:\n{string.Join("\n", errors)}");
    }

    [TestCaseSource(nameof(ErrorCodeCases))]
    public void Every_error_code_is_in_the_catalogue(string code) =>
        Assert.That(File.ReadAllLines(ProtocolPath).Any(l => l.StartsWith($"| `{code}` |", StringComparison.Ordinal)), Is.True,
            $"PROTOCOL.md's error code catalogue has no row for {code}.");

    [Test]
    public void Fingerprint_of_the_record_example_recomputes_from_its_contract()
    {
        var record = RegistryCodec.DeserializeBody<ToolContractRecord>(
            JsonMessagePack.FromJson(ContractFiles.SchemaDocument(nameof(ToolContractRecord)).GetProperty("examples")[0]));

        var fingerprint = ContractFingerprint.Compute(record.Name, record.Version, record.InputSchema, record.OutputSchema, record.ErrorCodes);

        Assert.That(fingerprint, Is.EqualTo(record.Fingerprint), "The ToolContractRecord example's fingerprint does not follow PROTOCOL.md section 9.");
    }

    [Test]
    public void Protocol_document_states_the_fingerprint_test_vector()
    {
        var record = RegistryCodec.DeserializeBody<ToolContractRecord>(
            JsonMessagePack.FromJson(ContractFiles.SchemaDocument(nameof(ToolContractRecord)).GetProperty("examples")[0]));
        var canonical = ContractFingerprint.Canonical(record.Name, record.Version, record.InputSchema, record.OutputSchema, record.ErrorCodes);
        var document = File.ReadAllText(ProtocolPath);

        Assert.That(document, Does.Contain(canonical), "PROTOCOL.md's canonical text for the test vector is not what section 9 produces.");
        Assert.That(document, Does.Contain(record.Fingerprint), "PROTOCOL.md does not state the test vector's fingerprint.");
    }

    [Test]
    public void Fingerprint_ignores_formatting_outside_strings_but_not_inside()
    {
        var spaced = ContractFingerprint.Compute("t", "1.0.0", "{ \"type\" :\r\n\t\"object\" }", "{}", []);
        var tight = ContractFingerprint.Compute("t", "1.0.0", "{\"type\":\"object\"}", "{}", []);
        var stringChanged = ContractFingerprint.Compute("t", "1.0.0", "{\"type\":\"object \"}", "{}", []);

        Assert.That(spaced, Is.EqualTo(tight), "Whitespace between tokens must not change the fingerprint.");
        Assert.That(stringChanged, Is.Not.EqualTo(tight), "Whitespace inside a string is content and must change the fingerprint.");
    }

    [Test]
    public void Fingerprint_orders_error_codes_by_code()
    {
        ToolErrorCode a = new() { Code = "A_ERROR" }, b = new() { Code = "B_ERROR", Description = "b" };

        Assert.That(ContractFingerprint.Compute("t", "1.0.0", "{}", "{}", [b, a]), Is.EqualTo(ContractFingerprint.Compute("t", "1.0.0", "{}", "{}", [a, b])),
            "The order error codes are declared in must not change the fingerprint.");
    }

    [Test]
    public void Fingerprint_string_escaping_matches_rfc_8785()
    {
        Assert.That(ContractFingerprint.Quote("a\"b\\c\n\u0001é/\u2028"), Is.EqualTo("\"a\\\"b\\\\c\\n\\u0001é/\u2028\""),
            "Only quote, backslash and control characters are escaped; everything else is literal.");
    }

    [Test]
    public void Protocol_document_names_the_endpoints_and_their_environment_variables()
    {
        var document = File.ReadAllText(ProtocolPath);
        Assert.That(document, Does.Contain("tcp://127.0.0.1:5750").And.Contain("ONEX_REGISTRY_ENDPOINT")
            .And.Contain("tcp://127.0.0.1:5751").And.Contain("ONEX_REGISTRY_PUB_ENDPOINT"), "Transport section is incomplete.");
        Assert.That(document, Does.Contain(RegistryCodec.MaxFrameBytes.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)),
            "PROTOCOL.md must state the frame size limit in bytes.");
    }
}
