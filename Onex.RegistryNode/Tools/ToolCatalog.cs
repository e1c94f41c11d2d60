using System.Text.Json;
using NJsonSchema;
using NJsonSchema.Validation;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Nodes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tenants;

namespace Onex.RegistryNode.Tools;

/// <summary>
/// Registered tool contracts by name and version (unique within a tenant: keyed by <see cref="TenantNames.Key"/> of the name), each with its parsed schemas (parsed once, at registration)
/// and its fingerprint. The same name and version with the same fingerprint is idempotent; with another
/// fingerprint it is CONTRACT_CONFLICT. A contract's health follows its owner's.
/// </summary>
internal sealed partial class ToolCatalog
{
    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z0-9._-]{1,128}$")]
    private static partial System.Text.RegularExpressions.Regex ToolName();

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Z][A-Z0-9_]*$")]
    private static partial System.Text.RegularExpressions.Regex ErrorCodeName();

    private const int MaxErrorCodes = 256;
    private const int MaxErrorCodeLength = 128;
    private const int MaxIssues = 100;

    private sealed record Entry(ToolContractRecord Record, Semver.SemVersion Version);

    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    // tenant key of the name -> versions; a handful of versions per tool, so a list scan for the highest is fine.
    private readonly Dictionary<string, Dictionary<string, Entry>> _tools = new(StringComparer.Ordinal);

    /// <summary>How many bytes of parsed schemas are kept by default (the rest are parsed again when used).</summary>
    public const long DefaultParsedSchemaMaxBytes = 48L * 1024 * 1024;

    /// <summary>The most CPU time one ValidatePayload may take on the registry thread (PROTOCOL.md 6.4).</summary>
    public static readonly TimeSpan ValidationTimeBudget = TimeSpan.FromMilliseconds(500);

    /// <summary>The largest payload ValidatePayload takes, in characters (PROTOCOL.md 6.4).</summary>
    public const int MaxPayloadChars = 256 * 1024;

    private readonly ParsedSchemaCache _schemas;

    private readonly StateChanges _changes;

    // Measures the work of a validation: the registry thread's CPU time, even when the domain runs on a fake clock.
    private readonly TimeProvider _workClock;

    public ToolCatalog(ChangeJournal journal, TimeProvider time, long parsedSchemaMaxBytes = DefaultParsedSchemaMaxBytes, StateChanges? changes = null,
        TimeProvider? workClock = null)
    {
        _journal = journal;
        _time = time;
        _schemas = new ParsedSchemaCache(parsedSchemaMaxBytes);
        _changes = changes ?? new StateChanges();
        _workClock = workClock ?? ThreadCpuTime.Instance;
    }

    /// <summary>The stored form of a contract (key <c>name@version</c>), or null when it is gone.</summary>
    public byte[]? Read(string key)
    {
        var at = key.LastIndexOf('@');
        return at > 0 && _tools.TryGetValue(key[..at], out var versions) && versions.TryGetValue(key[(at + 1)..], out var entry)
            ? RegistryCodec.SerializeBody(entry.Record) : null;
    }

    /// <summary>Puts stored contracts back (their schemas are parsed when first used). Called once, before use.</summary>
    public void Restore(StoredState stored)
    {
        foreach (var row in stored.OfKind(StoredKind.Tool))
        {
            var record = StoredRecords.Read<ToolContractRecord>(row.Value, StoredKind.Tool);
            ToolVersions.TryParse(record.Version, out var version);
            var name = TenantNames.Key(TenantNames.Of(record.Tenant), record.Name);
            if (!_tools.TryGetValue(name, out var versions)) _tools[name] = versions = new Dictionary<string, Entry>(StringComparer.Ordinal);
            if (versions.TryAdd(record.Version, new Entry(record, version))) Tally(record, +1);
        }
    }

    /// <summary>How many contracts' parsed schemas are held right now.</summary>
    public int ParsedSchemaCount => _schemas.Count;

    /// <summary>The estimated bytes of the parsed schemas held right now.</summary>
    public long ParsedSchemaBytes => _schemas.Bytes;

    /// <summary>Every contract.</summary>
    public IEnumerable<ToolContractRecord> Tools => _tools.Values.SelectMany(v => v.Values).Select(e => e.Record);

    /// <summary>How many contracts each tenant has.</summary>
    public TenantCounter PerTenant { get; } = new();

    /// <summary>How many bytes of schema text (UTF-8, input plus output) each tenant's contracts hold.</summary>
    public TenantCounter SchemaBytesPerTenant { get; } = new();

    /// <summary>The bytes of schema text a contract holds against its tenant's <c>schemaBytes</c> quota.</summary>
    public static long SchemaBytesOf(string? inputSchema, string? outputSchema) =>
        System.Text.Encoding.UTF8.GetByteCount(inputSchema ?? "") + System.Text.Encoding.UTF8.GetByteCount(outputSchema ?? "");

    private void Tally(ToolContractRecord record, int sign)
    {
        var tenant = TenantNames.Of(record.Tenant);
        PerTenant.Add(tenant, sign);
        SchemaBytesPerTenant.Add(tenant, sign * SchemaBytesOf(record.InputSchema, record.OutputSchema));
    }

    /// <summary>The key of a contract's stored row: <see cref="KeyOf"/> within its tenant.</summary>
    public static string StoreKeyOf(ToolContractRecord record) => TenantNames.Key(TenantNames.Of(record.Tenant), KeyOf(record));

    /// <summary>True when some version of the tool <paramref name="name"/> is registered here in <paramref name="tenant"/>.</summary>
    public bool HasName(string name, string tenant) => _tools.TryGetValue(TenantNames.Key(tenant, name), out var versions) && versions.Count > 0;

    /// <summary>True when the contract with this key (<c>name@version</c>) is registered here in <paramref name="tenant"/>.</summary>
    public bool Contains(string key, string tenant = TenantNames.Default)
    {
        key = TenantNames.Key(tenant, key);
        var at = key.LastIndexOf('@');
        return at > 0 && _tools.TryGetValue(key[..at], out var versions) && versions.ContainsKey(key[(at + 1)..]);
    }

    /// <summary>How many contracts are registered.</summary>
    public int Count => _tools.Values.Sum(v => v.Count);

    /// <summary>The key a change about this contract carries: <c>name@version</c>.</summary>
    public static string KeyOf(ToolContractRecord record) => record.Name + "@" + record.Version;

    /// <summary>Checks the fields that do not need the schemas parsed.</summary>
    public static void Validate(ToolContractRegistration registration)
    {
        if (registration.Name is null || !ToolName().IsMatch(registration.Name))
            throw Reject.InvalidArgument("name", "Field 'name' must be 1 to 128 characters from A-Z a-z 0-9 . _ -.", ("value", registration.Name ?? ""));
        Reject.IfBadIdentifier(registration.NodeId, "nodeId");
        if (!ToolVersions.TryParse(registration.Version, out _))
            throw Reject.InvalidArgument("version", $"Field 'version' must be a semantic version (MAJOR.MINOR.PATCH[-pre][+build]), not '{registration.Version}'.",
                ("value", registration.Version ?? ""));
        Reject.IfTooLong(registration.Description, "description");
        if (registration.InputSchema is null) throw Reject.InvalidArgument("inputSchema", "Field 'inputSchema' is required.");
        if (registration.OutputSchema is null) throw Reject.InvalidArgument("outputSchema", "Field 'outputSchema' is required.");
        if (registration.ErrorCodes is null) throw Reject.InvalidArgument("errorCodes", "Field 'errorCodes' must be a list.");
        if (registration.ErrorCodes.Count > MaxErrorCodes)
            throw Reject.InvalidArgument("errorCodes", $"Field 'errorCodes' has more than {MaxErrorCodes} entries.");
        var codes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var error in registration.ErrorCodes)
        {
            // ToolErrorCode.schema.json: at most 128 characters.
            if (error?.Code is null || error.Code.Length > MaxErrorCodeLength || !ErrorCodeName().IsMatch(error.Code))
                throw Reject.InvalidArgument("errorCodes", $"Every error code must match ^[A-Z][A-Z0-9_]*$ (e.g. RATE_LIMITED) and be at most {MaxErrorCodeLength} characters.",
                    ("value", error?.Code is { Length: > MaxErrorCodeLength } code ? code[..MaxErrorCodeLength] : error?.Code ?? ""));
            if (!codes.Add(error.Code))
                throw Reject.InvalidArgument("errorCodes", $"Error code '{error.Code}' is listed twice.", ("value", error.Code));
            Reject.IfTooLong(error.Description, "errorCodes");
        }
    }

    /// <summary>
    /// Registers a contract owned by <paramref name="owner"/>, in PROTOCOL.md's order: the schemas must be valid
    /// (SCHEMA_INVALID); the same name@version with another fingerprint is CONTRACT_CONFLICT; the same fingerprint
    /// from another node is NOT_OWNER; from the same node it is the existing record, unchanged.
    /// </summary>
    public ToolContractRecord Register(ToolContractRegistration registration, NodeRecord owner)
    {
        Validate(registration);
        CheckJson(registration.InputSchema, PayloadDirections.Input);
        CheckJson(registration.OutputSchema, PayloadDirections.Output);
        var fingerprint = ContractFingerprint.Compute(registration.Name, registration.Version, registration.InputSchema, registration.OutputSchema, registration.ErrorCodes);
        var key = registration.Name + "@" + registration.Version;

        Entry? existing = null;
        var scopedName = TenantNames.Key(TenantNames.Of(owner.Tenant), registration.Name);
        if (_tools.TryGetValue(scopedName, out var versions)) versions.TryGetValue(registration.Version, out existing);
        if (existing is not null && existing.Record.Fingerprint == fingerprint)
        {
            // The same schemas (up to whitespace) already loaded once, so they cannot be invalid now.
            if (existing.Record.NodeId != registration.NodeId)
                throw Reject.NotOwner($"Tool {key} is registered by node '{existing.Record.NodeId}'.",
                    ("tool", key), ("nodeId", registration.NodeId), ("owner", existing.Record.NodeId));
            return existing.Record;
        }

        var input = BoundedSchema.Load(registration.InputSchema, PayloadDirections.Input);
        var output = BoundedSchema.Load(registration.OutputSchema, PayloadDirections.Output);
        if (existing is not null)
            throw Reject.Contract(ErrorCodes.ContractConflict,
                $"Tool {key} is already registered with a different contract; publish a new version instead.",
                ("tool", key), ("fingerprint", existing.Record.Fingerprint), ("presentedFingerprint", fingerprint), ("owner", existing.Record.NodeId));

        ToolVersions.TryParse(registration.Version, out var version);
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
            Tenant = owner.Tenant,
        };
        if (versions is null) _tools[scopedName] = versions = new Dictionary<string, Entry>(StringComparer.Ordinal);
        versions[record.Version] = new Entry(record, version);
        Tally(record, +1);
        _changes.Mark(StoredKind.Tool, StoreKeyOf(record));
        // The parsed schemas are not kept: a contract's are parsed again at its first validation, as after a restart.
        // Kept, 1,000 registered contracts held up to the cache's whole bound in parsed graphs nobody had asked for
        // (Onex.RegistryNode/README.md, "Memory").
        _journal.Record(ChangeTypes.ToolRegistered, KeyOf(record), ChangeJournal.Of(record), null);
        return record;
    }

    /// <summary>Validates a JSON payload against a contract (of <paramref name="tenant"/>)'s input or output schema.</summary>
    public ValidationResult Validate(ValidatePayload request, string tenant = TenantNames.Default)
    {
        Reject.IfBlank(request.ToolName, "toolName");
        if (request.Direction is not (PayloadDirections.Input or PayloadDirections.Output))
            throw Reject.InvalidArgument("direction", $"Field 'direction' must be input or output, not '{request.Direction}'.",
                ("value", request.Direction ?? ""), ("allowed", "input,output"));
        if (request.Payload is null) throw Reject.InvalidArgument("payload", "Field 'payload' is required.");
        if (request.Payload.Length > MaxPayloadChars)
            throw Reject.InvalidArgument("payload", $"Field 'payload' is longer than {MaxPayloadChars} characters, the most the registry validates.",
                ("reason", "tooLarge"), ("max", MaxPayloadChars.ToString()));
        var entry = Find(request.ToolName, request.Version, tenant);
        var issues = Check(entry.Record, request.Direction, request.Payload, _schemas, _workClock);
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
    public void SetHealthOf(string nodeId, string health, string tenant = TenantNames.Default)
    {
        foreach (var (versions, entry) in OwnedBy(nodeId, tenant))
        {
            if (entry.Record.Health == health) continue;
            var updated = entry with { Record = entry.Record with { Health = health } };
            versions[entry.Record.Version] = updated;
            _changes.Mark(StoredKind.Tool, StoreKeyOf(updated.Record));
            _journal.Record(ChangeTypes.ToolUpdated, KeyOf(updated.Record), ChangeJournal.Of(updated.Record), ChangeJournal.Of(entry.Record));
        }
    }

    /// <summary>Removes every contract of <paramref name="nodeId"/>, broadcasting <c>tool.removed</c>.</summary>
    public void RemoveAllOf(string nodeId, string tenant = TenantNames.Default)
    {
        foreach (var (versions, entry) in OwnedBy(nodeId, tenant))
        {
            if (versions.Remove(entry.Record.Version)) Tally(entry.Record, -1);
            if (versions.Count == 0) _tools.Remove(TenantNames.Key(tenant, entry.Record.Name));
            _changes.Mark(StoredKind.Tool, StoreKeyOf(entry.Record));
            _journal.Record(ChangeTypes.ToolRemoved, KeyOf(entry.Record), null, ChangeJournal.Of(entry.Record));
        }
    }

    private Entry Find(string name, string? version, string tenant)
    {
        if (!_tools.TryGetValue(TenantNames.Key(tenant, name), out var versions) || versions.Count == 0)
            throw Reject.NotFound($"No tool named '{name}' is registered.", ("toolName", name), ("version", version ?? ""));
        if (version is not null)
        {
            return versions.TryGetValue(version, out var exact)
                ? exact
                : throw Reject.NotFound($"Tool '{name}' has no version '{version}'.", ("toolName", name), ("version", version));
        }
        return versions.Values.MaxBy(e => e.Version, ToolVersions.Precedence)!;
    }

    private List<(Dictionary<string, Entry> Versions, Entry Entry)> OwnedBy(string nodeId, string tenant) =>
        _tools.Values
            .SelectMany(versions => versions.Values.Where(e => e.Record.NodeId == nodeId && TenantNames.Of(e.Record.Tenant) == tenant).Select(e => (versions, e)))
            .OrderBy(x => KeyOf(x.e.Record), StringComparer.Ordinal)
            .ToList();

    /// <summary>The schema must be strict JSON, an object at the top, with well-formed keywords and local references only.</summary>
    private static void CheckJson(string schema, string which)
    {
        try
        {
            using var document = JsonDocument.Parse(schema, new JsonDocumentOptions { MaxDepth = 64 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw SchemaLoader.Invalid(which, "the top level of a schema must be a JSON object", null, null, "#");
            if (SchemaKeywordCheck.FindProblem(document.RootElement) is var (pointer, problem))
                throw SchemaLoader.Invalid(which, $"{problem} (at {pointer})", null, null, pointer);
        }
        catch (JsonException ex)
        {
            var line = ex.LineNumber is { } l ? l + 1 : (long?)null;
            var position = ex.BytePositionInLine is { } p ? p + 1 : (long?)null;
            throw SchemaLoader.Invalid(which, "not valid JSON: " + ex.Message, line, position);
        }
    }

    /// <summary>
    /// The issues of <paramref name="payload"/> against <paramref name="record"/>'s input or output schema (empty when
    /// valid), parsing the schemas through <paramref name="schemas"/>. Used by the registry thread and, with a cache of
    /// its own, by the HTTP endpoint's validation form.
    /// </summary>
    /// <summary>
    /// The issues of <paramref name="payload"/> against <paramref name="record"/>'s schema for <paramref name="direction"/>,
    /// within <see cref="ValidationTimeBudget"/> of <paramref name="workClock"/> (the calling thread's CPU time in service);
    /// over it, INVALID_ARGUMENT with reason <c>timeBudget</c>. Used by the registry thread and by the HTTP endpoint's form.
    /// </summary>
    internal static List<ValidationIssue> Check(ToolContractRecord record, string direction, string payload, ParsedSchemaCache schemas, TimeProvider workClock)
    {
        var issues = new List<ValidationIssue>();
        try
        {
            using var strict = JsonDocument.Parse(payload, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            // Not JSON is an invalid payload, not a failed request (PROTOCOL.md 6.4).
            var where = $"line {(ex.LineNumber ?? 0) + 1}, position {(ex.BytePositionInLine ?? 0) + 1}";
            issues.Add(new ValidationIssue { Path = "#", Kind = "InvalidJson", Message = $"InvalidJson: # ({where}): {ex.Message}" });
        }
        if (issues.Count == 0)
        {
            var (input, output) = schemas.Get(record.Fingerprint, () => (
                BoundedSchema.Load(record.InputSchema, PayloadDirections.Input),
                BoundedSchema.Load(record.OutputSchema, PayloadDirections.Output)));
            var schema = direction == PayloadDirections.Input ? input : output;
            var deadline = workClock.GetTimestamp() + (long)(ValidationTimeBudget.TotalSeconds * workClock.TimestampFrequency);
            try
            {
                Flatten(schema.Validate(payload, workClock, deadline), issues);
            }
            catch (ValidationBudgetExceededException)
            {
                throw Reject.InvalidArgument("payload",
                    $"Validating this payload against {KeyOf(record)} takes longer than the registry's budget of {ValidationTimeBudget.TotalMilliseconds} ms.",
                    ("reason", "timeBudget"), ("max", ValidationTimeBudget.TotalMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
        return issues;
    }

    private static void Flatten(IEnumerable<ValidationError> errors, List<ValidationIssue> issues)
    {
        foreach (var error in errors)
        {
            if (issues.Count >= MaxIssues) return;
            // The document root is "#" (ValidationIssue.schema.json); NJsonSchema writes "#/" for it.
            var path = string.IsNullOrEmpty(error.Path) || error.Path == "#/" ? "#" : error.Path;
            var kind = error.Kind.ToString();
            var where = error.HasLineInfo ? $" (line {error.LineNumber}, position {error.LinePosition})" : "";
            issues.Add(new ValidationIssue { Path = path, Kind = kind, Message = $"{kind}: {path}{where}" });
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
