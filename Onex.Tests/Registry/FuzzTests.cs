using Onex.Benchmarks.Fuzz;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

/// <summary>A short seeded run of the registry fuzzer (Onex.Benchmarks <c>-- fuzz</c>) against a node process.</summary>
public class FuzzTests
{
    [Test]
    public async Task Mutated_requests_are_all_answered_with_catalogue_codes_and_change_nothing_by_themselves()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var fuzzer = new RegistryFuzzer(node.Router, seed: 7);
        fuzzer.Prepare();

        var result = fuzzer.Run(3_000);

        TestContext.Out.WriteLine($"{result.Sent} sent in {result.Elapsed.TotalSeconds:F1} s; codes: {string.Join(", ", result.Codes.Select(c => $"{c.Key} {c.Value}"))}");
        Assert.That(result.Problems, Is.Empty, "the fuzzer found problems");
        Assert.That((result.Answered, result.Unanswered, result.BadReplies, result.UnexplainedStateChanges), Is.EqualTo((3_000L, 0L, 0L, 0L)));
        Assert.That(result.Codes.Keys, Has.Count.GreaterThan(4), "the mutations should reach more than the decoder");
        Assert.That(fuzzer.Sequence(), Is.GreaterThan(0), "the node stopped answering after the run");
    }

    [Test]
    public async Task Contract_breaking_requests_are_all_answered_mostly_malformed_and_change_nothing_by_themselves()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var fuzzer = new RegistryFuzzer(node.Router, seed: 11, FuzzMode.Malformed);
        fuzzer.Prepare();

        var result = fuzzer.Run(2_000);

        TestContext.Out.WriteLine($"{result.Sent} sent in {result.Elapsed.TotalSeconds:F1} s; codes: {string.Join(", ", result.Codes.Select(c => $"{c.Key} {c.Value}"))}");
        Assert.That(result.Problems, Is.Empty, "the fuzzer found problems");
        Assert.That((result.Answered, result.Unanswered, result.BadReplies, result.UnexplainedStateChanges), Is.EqualTo((2_000L, 0L, 0L, 0L)));
        Assert.That(result.Codes.GetValueOrDefault(ErrorCodes.Malformed), Is.GreaterThan(result.Sent / 2), "most contract-breaking requests should be MALFORMED");
    }

    [Test]
    public async Task Requests_with_missing_unknown_foreign_and_reader_tokens_ambiguous_admin_names_and_broken_bodies_get_the_catalogue_refusals_and_change_nothing()
    {
        using var auth = new FuzzAuthFile();
        await using var node = await PeerBoundsTests.StartNodeAsync("--auth-file", auth.Path);
        using var fuzzer = new RegistryFuzzer(node.Router, seed: 13, FuzzMode.Auth, auth);
        fuzzer.Prepare();

        var result = fuzzer.Run(2_000);

        TestContext.Out.WriteLine($"{result.Sent} sent in {result.Elapsed.TotalSeconds:F1} s; codes: {string.Join(", ", result.Codes.Select(c => $"{c.Key} {c.Value}"))}");
        Assert.That(result.Problems, Is.Empty, "the fuzzer found problems");
        Assert.That((result.Answered, result.Unanswered, result.BadReplies, result.UnexplainedStateChanges), Is.EqualTo((2_000L, 0L, 0L, 0L)));
        // INVALID_ARGUMENT: an admin naming no tenant on a name both tenants hold (reason ambiguous); MALFORMED: broken bodies with tokens.
        foreach (var code in new[] { ErrorCodes.Unauthenticated, ErrorCodes.PermissionDenied, ErrorCodes.LeaseNotFound, ErrorCodes.NotOwner, ErrorCodes.Fenced,
                     ErrorCodes.InvalidArgument, ErrorCodes.Malformed, "OK" })
            Assert.That(result.Codes.GetValueOrDefault(code), Is.GreaterThan(20), $"the run should reach {code} often");
        Assert.That(result.AttributedChanges, Is.GreaterThan(50), "the successful writes should have been matched to their changes");
    }

    [Test]
    public async Task A_change_no_request_of_the_fuzzer_made_fails_the_batch_check_with_the_seed()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var fuzzer = new RegistryFuzzer(node.Router, seed: 5);
        fuzzer.Prepare();
        using var outsider = new TestDealer(node.Router);

        // Between two batches another client registers a node: the next batch's changes hold one no request explains.
        var result = fuzzer.Run(RegistryFuzzer.BatchSize * 2, sent =>
        {
            if (sent == RegistryFuzzer.BatchSize) outsider.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "fz-outsider" });
        });

        Assert.That(result.UnexplainedStateChanges, Is.EqualTo(1), string.Join(Environment.NewLine, result.Problems));
        Assert.That(result.Problems, Has.One.Contains("seed 5, batch 2").And.Contains("node.registered default/fz-outsider"));
    }
}
