using System.Text.Json;
using NJsonSchema;
using NJsonSchema.Validation;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Nodes;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// Registered tool contracts by name and version, each with its parsed schemas (parsed once, at registration)
/// and its fingerprint. The same name and version with the same fingerprint is idempotent; with another
/// fingerprint it is CONTRACT_CONFLICT. A contract's health follows its owner's.
/// </summary>
internal sealed class ToolCatalog
{
    private const int MaxErrorCodes = 256;
    private const int MaxIssues = 100;

    private sealed record Entry(ToolContractRecord Record, SemanticVersion Version, JsonSchema Input, JsonSchema Output);

    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    // name -> versions; a handful of versions per tool, so a list scan for the highest is fine.
    private readonly Dictionary<string, Dictionary<string, Entry>> _tools = new(StringComparer.Ordinal);

    public ToolCatalog(ChangeJournal journal, TimeProvider time)
    {
        _journal = journal;
        _time = time;
    }

    /// <summary>Every contract.</summary>
    public IEnumerable<ToolContractRecord> Tools => _tools.Values.SelectMany(v => v.Values).Select(e => e.Record);

    /// <summary>How many contracts are registered.</summary>
    public int Count => _tools.Values.Sum(v => v.Count);

    /// <summary>The key a change about this contract carries: <c>name@version</c>.</summary>
    public static string KeyOf(ToolContractRecord record) => record.Name + "@" + record.Version;

    /// <summary>Checks the fields that do not need the schemas parsed.</summary>
    public static void Validate(ToolContractRegistration registration)
    {
        Reject.IfBlank(registration.Name, "name");
        Reject.IfBlank(registration.NodeId, "nodeId");
        if (!SemanticVersion.TryParse(registration.Version, out _))
            throw Reject.InvalidArgument("version", $"Field 'version' must be a semantic version (MAJOR.MINOR.PATCH[-pre][+build]), not '{registration.Version}'.");
        Reject.IfTooLong(registration.Description, "description");
        if (registration.InputSchema is null) throw Reject.InvalidArgument("inputSchema", "Field 'inputSchema' is required.");
        if (registration.OutputSchema is null) throw Reject.InvalidArgument("outputSchema", "Field 'outputSchema' is required.");
        if (registration.ErrorCodes is null) throw Reject.InvalidArgument("errorCodes", "Field 'errorCodes' must be a list.");
        if (registration.ErrorCodes.Count > MaxErrorCodes)
            throw Reject.InvalidArgument("errorCodes", $"Field 'errorCodes' has more than {MaxErrorCodes} entries.");
        var codes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var error in registration.ErrorCodes)
        {
            if (error is null || string.IsNullOrWhiteSpace(error.Code) || error.Code.Length > Reject.MaxNameLength)
                throw Reject.InvalidArgument("errorCodes", "Every entry of 'errorCodes' needs a non-empty code.");
            if (!codes.Add(error.Code))
                throw Reject.InvalidArgument("errorCodes", $"Error code '{error.Code}' is listed twice.");
            Reject.IfTooLong(error.Description, "errorCodes");
        }
    }

    /// <summary>Registers a contract owned by <paramref name="owner"/>, or returns the identical one already there.</summary>
    public ToolContractRecord Register(ToolContractRegistration registration, NodeRecord owner)
    {
        Validate(registration);
        var canonicalInput = Canonical(registration.InputSchema, PayloadDirections.Input);
        var canonicalOutput = Canonical(registration.OutputSchema, PayloadDirections.Output);
        var fingerprint = ContractFingerprint.Compute(registration.Name, registration.Version, canonicalInput, canonicalOutput, registration.ErrorCodes);

        if (_tools.TryGetValue(registration.Name, out var versions) && versions.TryGetValue(registration.Version, out var existing))
        {
            if (existing.Record.Fingerprint == fingerprint) return existing.Record;
            throw Reject.Contract(ErrorCodes.ContractConflict,
                $"Tool {registration.Name}@{registration.Version} is already registered with a different contract; publish a new version instead.",
                ("name", registration.Name), ("version", registration.Version),
                ("registeredFingerprint", existing.Record.Fingerprint), ("fingerprint", fingerprint), ("owner", existing.Record.NodeId));
        }

        var input = SchemaLoader.Load(registration.InputSchema, PayloadDirections.Input);
        var output = SchemaLoader.Load(registration.OutputSchema, PayloadDirections.Output);
        SemanticVersion.TryParse(registration.Version, out var version);
        var record = new ToolContractRecord
        {
            Name = registration.Name,
            Version = registration.Version,
            Description = registration.Description ?? "",
            InputSchema = registration.InputSchema,
            OutputSchema = registration.OutputSchema,
            ErrorCodes = registration.ErrorCodes.ToArray(),
            NodeId = registration.NodeId,
            Fingerprint = fingerprint,
            Health = owner.Health,
            RegisteredAt = _time.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        if (versions is null) _tools[record.Name] = versions = new Dictionary<string, Entry>(StringComparer.Ordinal);
        versions[record.Version] = new Entry(record, version, input, output);
        _journal.Record(ChangeTypes.ToolRegistered, KeyOf(record), ChangeJournal.Of(record), null);
        return record;
    }

    /// <summary>Validates a JSON payload against a contract's input or output schema.</summary>
    public ValidationResult Validate(ValidatePayload request)
    {
        Reject.IfBlank(request.ToolName, "toolName");
        if (request.Direction is not (PayloadDirections.Input or PayloadDirections.Output))
            throw Reject.InvalidArgument("direction", $"Field 'direction' must be input or output, not '{request.Direction}'.");
        if (request.Payload is null) throw Reject.InvalidArgument("payload", "Field 'payload' is required.");
        var entry = Find(request.ToolName, request.Version);
        try
        {
            using var strict = JsonDocument.Parse(request.Payload, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw Reject.InvalidArgument("payload", $"Field 'payload' is not JSON: {ex.Message}",
                ("line", ((ex.LineNumber ?? 0) + 1).ToString()), ("position", ((ex.BytePositionInLine ?? 0) + 1).ToString()));
        }

        var schema = request.Direction == PayloadDirections.Input ? entry.Input : entry.Output;
        var issues = new List<ValidationIssue>();
        Flatten(schema.Validate(request.Payload), issues);
        return new ValidationResult
        {
            Valid = issues.Count == 0,
            ToolName = entry.Record.Name,
            Version = entry.Record.Version,
            Fingerprint = entry.Record.Fingerprint,
            Errors = issues,
        };
    }

    /// <summary>Sets the health of every contract of <paramref name="nodeId"/>, broadcasting <c>tool.updated</c>.</summary>
    public void SetHealthOf(string nodeId, string health)
    {
        foreach (var (versions, entry) in OwnedBy(nodeId))
        {
            if (entry.Record.Health == health) continue;
            var updated = entry with { Record = entry.Record with { Health = health } };
            versions[entry.Record.Version] = updated;
            _journal.Record(ChangeTypes.ToolUpdated, KeyOf(updated.Record), ChangeJournal.Of(updated.Record), ChangeJournal.Of(entry.Record));
        }
    }

    /// <summary>Removes every contract of <paramref name="nodeId"/>, broadcasting <c>tool.removed</c>.</summary>
    public void RemoveAllOf(string nodeId)
    {
        foreach (var (versions, entry) in OwnedBy(nodeId))
        {
            versions.Remove(entry.Record.Version);
            if (versions.Count == 0) _tools.Remove(entry.Record.Name);
            _journal.Record(ChangeTypes.ToolRemoved, KeyOf(entry.Record), null, ChangeJournal.Of(entry.Record));
        }
    }

    private Entry Find(string name, string? version)
    {
        if (!_tools.TryGetValue(name, out var versions) || versions.Count == 0)
            throw Reject.NotFound($"No tool named '{name}' is registered.", ("toolName", name));
        if (version is not null)
        {
            return versions.TryGetValue(version, out var exact)
                ? exact
                : throw Reject.NotFound($"Tool '{name}' has no version '{version}'.", ("toolName", name), ("version", version));
        }
        return versions.Values.MaxBy(e => e.Version)!;
    }

    private List<(Dictionary<string, Entry> Versions, Entry Entry)> OwnedBy(string nodeId) =>
        _tools.Values
            .SelectMany(versions => versions.Values.Where(e => e.Record.NodeId == nodeId).Select(e => (versions, e)))
            .OrderBy(x => KeyOf(x.e.Record), StringComparer.Ordinal)
            .ToList();

    private static string Canonical(string schema, string which)
    {
        string canonical;
        try
        {
            canonical = ContractFingerprint.Canonicalize(schema);
        }
        catch (JsonException ex)
        {
            var line = ex.LineNumber is { } l ? l + 1 : (long?)null;
            var position = ex.BytePositionInLine is { } p ? p + 1 : (long?)null;
            throw SchemaLoader.Invalid(which, "not valid JSON: " + ex.Message, line, position);
        }
        if (canonical.Length == 0 || canonical[0] != '{')
            throw SchemaLoader.Invalid(which, "a schema must be a JSON object", 1, 1);
        return canonical;
    }

    private static void Flatten(IEnumerable<ValidationError> errors, List<ValidationIssue> issues)
    {
        foreach (var error in errors)
        {
            if (issues.Count >= MaxIssues) return;
            var path = string.IsNullOrEmpty(error.Path) ? "#" : error.Path;
            var kind = error.Kind.ToString();
            var where = error.HasLineInfo ? $" (line {error.LineNumber}, position {error.LinePosition})" : "";
            issues.Add(new ValidationIssue { Path = path, Kind = kind, Message = $"{kind} at {path}{where}" });
            switch (error)
            {
                case ChildSchemaValidationError child:
                    foreach (var nested in child.Errors.Values) Flatten(nested, issues);
                    break;
                case MultiTypeValidationError multi:
                    foreach (var nested in multi.Errors.Values) Flatten(nested, issues);
                    break;
            }
        }
    }
}
