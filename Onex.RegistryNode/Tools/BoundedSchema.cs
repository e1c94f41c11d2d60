using System.Text.RegularExpressions;
using NJsonSchema;
using NJsonSchema.Validation;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// A parsed tool schema that can be validated against on the registry thread with bounded work. NJsonSchema runs
/// <c>pattern</c> and <c>patternProperties</c> with the backtracking regex engine and no timeout, so one pattern
/// such as <c>^(a+)+$</c> could stop the registry for hours. Here every pattern is compiled once with
/// <see cref="RegexOptions.NonBacktracking"/> (time linear in the input) and taken out of the NJsonSchema object
/// graph; <see cref="BoundedSchemaValidator"/> evaluates them instead, and checks a time budget at every schema node.
/// </summary>
internal sealed class BoundedSchema
{
    /// <summary>
    /// The longest one pattern match may take, in elapsed time: a backstop only (a non-backtracking match of a pattern
    /// within <see cref="MaxPatternLength"/> on a payload within the size budget takes milliseconds).
    /// </summary>
    public static readonly TimeSpan PatternMatchTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The longest pattern accepted, in characters (the work of a match grows with the pattern's size).</summary>
    public const int MaxPatternLength = 1000;

    internal sealed record PatternPropertiesRule(
        IReadOnlyList<(string Pattern, Regex Regex, JsonSchema Schema)> Patterns,
        bool AllowAdditional,
        JsonSchema? AdditionalSchema);

    private readonly Dictionary<JsonSchema, Regex> _patterns;
    private readonly Dictionary<JsonSchema, PatternPropertiesRule> _patternProperties;

    private BoundedSchema(JsonSchema root, Dictionary<JsonSchema, Regex> patterns, Dictionary<JsonSchema, PatternPropertiesRule> patternProperties, long estimatedBytes)
    {
        Root = root;
        _patterns = patterns;
        _patternProperties = patternProperties;
        EstimatedBytes = estimatedBytes;
    }

    /// <summary>The NJsonSchema graph, with its patterns taken out.</summary>
    public JsonSchema Root { get; }

    /// <summary>
    /// What holding this schema costs, in bytes: the bytes allocated while parsing and preparing it (an upper
    /// bound of what stays reachable, since the garbage is included).
    /// </summary>
    public long EstimatedBytes { get; }

    /// <summary>The compiled <c>pattern</c> of <paramref name="schema"/>, if it has one.</summary>
    public Regex? PatternOf(JsonSchema schema) => _patterns.GetValueOrDefault(schema);

    /// <summary>The <c>patternProperties</c> (and the <c>additionalProperties</c> beside them) of <paramref name="schema"/>.</summary>
    public PatternPropertiesRule? PatternPropertiesOf(JsonSchema schema) => _patternProperties.GetValueOrDefault(schema);

    /// <summary>
    /// Parses <paramref name="json"/> (already checked by <see cref="SchemaKeywordCheck"/>) and prepares it.
    /// Throws SCHEMA_INVALID when NJsonSchema cannot load it or a pattern cannot run without backtracking.
    /// </summary>
    public static BoundedSchema Load(string json, string which)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var root = SchemaLoader.Load(json, which);
        var patterns = new Dictionary<JsonSchema, Regex>(ReferenceEqualityComparer.Instance);
        var patternProperties = new Dictionary<JsonSchema, PatternPropertiesRule>(ReferenceEqualityComparer.Instance);
        try
        {
            Prepare(root, patterns, patternProperties, new HashSet<JsonSchema>(ReferenceEqualityComparer.Instance));
        }
        catch (InvalidOperationException ex)
        {
            // NJsonSchema's ActualSchema throws on a cycle of references; validation would fail on it later.
            throw SchemaLoader.Invalid(which, ex.Message, null, null);
        }
        var estimated = GC.GetAllocatedBytesForCurrentThread() - before;
        return new BoundedSchema(root, patterns, patternProperties, Math.Max(estimated, json.Length * 2L));
    }

    /// <summary>
    /// Compiles <paramref name="pattern"/> for bounded matching, or returns why it cannot be: a syntax error, or a
    /// construct the non-backtracking engine does not support (backreferences, lookarounds, atomic groups).
    /// </summary>
    public static Regex Compile(string pattern, out string? problem)
    {
        if (pattern.Length > MaxPatternLength)
        {
            problem = $"is longer than {MaxPatternLength} characters, the longest the registry runs";
            return null!;
        }
        try
        {
            problem = null;
            return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, PatternMatchTimeout);
        }
        catch (NotSupportedException ex)
        {
            problem = "uses a construct the registry cannot run in bounded time (backreference, lookaround, atomic group or conditional): " + ex.Message;
        }
        catch (ArgumentException ex)
        {
            problem = "is not a valid regular expression: " + ex.Message;
        }
        return null!;
    }

    /// <summary>Validates <paramref name="json"/>, giving up with <see cref="ValidationBudgetExceededException"/> past <paramref name="deadline"/>.</summary>
    public ICollection<ValidationError> Validate(string json, TimeProvider clock, long deadline) =>
        new BoundedSchemaValidator(this, clock, deadline).Validate(json, Root);

    // Walks every schema NJsonSchema's validator can reach and moves its patterns into the side tables.
    private static void Prepare(JsonSchema schema, Dictionary<JsonSchema, Regex> patterns, Dictionary<JsonSchema, PatternPropertiesRule> patternProperties, HashSet<JsonSchema> seen)
    {
        schema = schema.ActualSchema;
        if (!seen.Add(schema)) return;

        if (!string.IsNullOrEmpty(schema.Pattern))
        {
            patterns[schema] = Compile(schema.Pattern, out var problem) ?? throw new InvalidOperationException($"'pattern' {problem}");
            schema.Pattern = null;
        }
        if (schema.PatternProperties.Count > 0)
        {
            var rules = new List<(string, Regex, JsonSchema)>();
            foreach (var (pattern, child) in schema.PatternProperties)
                rules.Add((pattern, Compile(pattern, out var problem) ?? throw new InvalidOperationException($"'patternProperties' key {problem}"), child));
            patternProperties[schema] = new PatternPropertiesRule(rules, schema.AllowAdditionalProperties, schema.AdditionalPropertiesSchema);
            // The validator applies these itself: a property matched by a pattern is not an additional one.
            schema.PatternProperties.Clear();
            schema.AdditionalPropertiesSchema = null;
            schema.AllowAdditionalProperties = true;
            foreach (var (_, _, child) in rules) Prepare(child, patterns, patternProperties, seen);
            if (patternProperties[schema].AdditionalSchema is { } additional) Prepare(additional, patterns, patternProperties, seen);
        }

        foreach (var child in schema.AllOf) Prepare(child, patterns, patternProperties, seen);
        foreach (var child in schema.AnyOf) Prepare(child, patterns, patternProperties, seen);
        foreach (var child in schema.OneOf) Prepare(child, patterns, patternProperties, seen);
        foreach (var child in schema.Items) Prepare(child, patterns, patternProperties, seen);
        foreach (var child in schema.Properties.Values) Prepare(child, patterns, patternProperties, seen);
        foreach (var child in schema.Definitions.Values) Prepare(child, patterns, patternProperties, seen);
        if (schema.Not is { } not) Prepare(not, patterns, patternProperties, seen);
        if (schema.Item is { } item) Prepare(item, patterns, patternProperties, seen);
        if (schema.AdditionalItemsSchema is { } additionalItems) Prepare(additionalItems, patterns, patternProperties, seen);
        if (schema.AdditionalPropertiesSchema is { } additionalProperties) Prepare(additionalProperties, patterns, patternProperties, seen);
    }
}

/// <summary>Validation took longer than its budget; the request is answered with INVALID_ARGUMENT.</summary>
internal sealed class ValidationBudgetExceededException : Exception
{
    public ValidationBudgetExceededException() : base("Validation exceeded its time budget.") { }
}
