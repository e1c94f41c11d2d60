using System.Numerics;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using NJsonSchema;
using NJsonSchema.Validation;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// NJsonSchema's validator with the registry's bounds: every schema node it visits first checks the time budget
/// (so nested <c>anyOf</c> that would take exponential time gives up instead), patterns run with the
/// non-backtracking engine of <see cref="BoundedSchema"/>, and an integer too large for <c>decimal</c> (which
/// NJsonSchema cannot convert and would fail on) is checked as a number of its magnitude.
/// </summary>
internal sealed class BoundedSchemaValidator(BoundedSchema bounded, TimeProvider clock, long deadline) : JsonSchemaValidator
{
    protected override ICollection<ValidationError> Validate(JToken token, JsonSchema schema, SchemaType schemaType, string? propertyName, string propertyPath)
    {
        if (clock.GetTimestamp() > deadline) throw new ValidationBudgetExceededException();

        ICollection<ValidationError> errors;
        if (token is JValue { Value: BigInteger big })
        {
            // NJsonSchema converts integers to decimal and fails on BigInteger. Check the same value as a float
            // instead, then drop the IntegerExpected its float type causes: the token is an integer.
            var stand = new JValue((double)big);
            errors = base.Validate(stand, schema, schemaType, propertyName, propertyPath);
            bool StandIsNotInteger(ValidationError e) => e.Kind == ValidationErrorKind.IntegerExpected && ReferenceEquals(e.Token, stand);
            // A multi-type error disappears when its integer branch failed only for the stand-in's type.
            errors = errors.Where(e => !StandIsNotInteger(e)
                                       && !(e is MultiTypeValidationError multi && multi.Errors.Values.Any(branch => branch.All(StandIsNotInteger))))
                .ToList();
        }
        else
        {
            errors = base.Validate(token, schema, schemaType, propertyName, propertyPath);
        }

        if (token.Type == JTokenType.String && bounded.PatternOf(schema) is { } pattern && !Matches(pattern, token.Value<string>()!))
            errors.Add(new ValidationError(ValidationErrorKind.PatternMismatch, propertyName, propertyPath, token, schema));

        if (token is JObject obj && bounded.PatternPropertiesOf(schema) is { } rule)
            ValidatePatternProperties(obj, schema, rule, schemaType, propertyPath, errors);
        return errors;
    }

    // JSON Schema: a property matched by any pattern is validated against each matching schema; the rest, not
    // declared in "properties", are the additional ones.
    private void ValidatePatternProperties(JObject obj, JsonSchema schema, BoundedSchema.PatternPropertiesRule rule, SchemaType schemaType, string propertyPath, ICollection<ValidationError> errors)
    {
        foreach (var property in obj.Properties())
        {
            if (schema.Properties.ContainsKey(property.Name)) continue;
            var path = string.IsNullOrEmpty(propertyPath) ? property.Name : propertyPath + "." + property.Name;
            var matched = false;
            foreach (var (_, regex, child) in rule.Patterns)
            {
                if (!Matches(regex, property.Name)) continue;
                matched = true;
                AddChildErrors(property, child, schemaType, path, errors);
            }
            if (matched) continue;
            if (rule.AdditionalSchema is { } additional)
                AddChildErrors(property, additional, schemaType, path, errors);
            else if (!rule.AllowAdditional)
                errors.Add(new ValidationError(ValidationErrorKind.NoAdditionalPropertiesAllowed, property.Name, path, property, schema));
        }
    }

    private void AddChildErrors(JProperty property, JsonSchema child, SchemaType schemaType, string path, ICollection<ValidationError> errors)
    {
        var nested = Validate(property.Value, child.ActualSchema, schemaType, null, path);
        if (nested.Count > 0)
            errors.Add(new ChildSchemaValidationError(ValidationErrorKind.AdditionalPropertiesNotValid, property.Name, path,
                new Dictionary<JsonSchema, ICollection<ValidationError>> { [child] = nested }, property.Value, child));
    }

    private static bool Matches(Regex regex, string value)
    {
        try
        {
            return regex.IsMatch(value);
        }
        catch (RegexMatchTimeoutException)
        {
            throw new ValidationBudgetExceededException();
        }
    }
}
