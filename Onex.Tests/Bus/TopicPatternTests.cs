using Onex.Bus;

namespace Onex.Tests.Bus;

public class TopicPatternTests
{
    [TestCase("a.b.c", "a.b.c", true)]
    [TestCase("a.b.c", "a.b", false)]
    [TestCase("a.*.c", "a.x.c", true)]
    [TestCase("a.*.c", "a.x.y.c", false)]
    [TestCase("a.*", "a", false)]
    [TestCase("a.>", "a.b", true)]
    [TestCase("a.>", "a.b.c.d", true)]
    [TestCase("a.>", "a", false)]
    [TestCase(">", "anything.at.all", true)]
    [TestCase("*.b.>", "x.b.y", true)]
    [TestCase("*.b.>", "x.c.y", false)]
    [TestCase("a.b", "a.bc", false)]
    [TestCase("a.*.*", "a.b", false)]
    public void Pattern_matches_topics_by_token(string pattern, string topic, bool expected) =>
        Assert.That(TopicPattern.Parse(pattern).Matches(topic), Is.EqualTo(expected),
            $"pattern '{pattern}' against topic '{topic}'");

    [TestCase("")]
    [TestCase("a..b")]
    [TestCase(".a")]
    [TestCase("a.")]
    [TestCase("a.>.b")]
    [TestCase("a.b*")]
    [TestCase("a b")]
    public void Invalid_pattern_is_rejected_with_reason(string pattern) =>
        Assert.That(() => TopicPattern.Parse(pattern), Throws.ArgumentException.With.Message.Contains("not a valid topic pattern"));

    [TestCase("a.*")]
    [TestCase("a.>")]
    public void Wildcards_are_not_valid_in_concrete_topics(string topic) =>
        Assert.That(Topic.IsValid(topic), Is.False);

    [TestCase("registry.lease.*", "registry.lease.")]
    [TestCase("registry.>", "registry.")]
    [TestCase("a.b", "a.b")]
    [TestCase("*.b", "")]
    public void Literal_prefix_stops_at_first_wildcard(string pattern, string prefix) =>
        Assert.That(Topic.LiteralPrefix(pattern), Is.EqualTo(prefix));
}
