using MessagePack;

namespace Onex.Protocol;

/// <summary>An error code a tool declares it may return.</summary>
[MessagePackObject]
public sealed record ToolErrorCode
{
    /// <summary>The code, e.g. <c>RATE_LIMITED</c>.</summary>
    [Key("code")] public required string Code { get; init; }
    /// <summary>When it is returned.</summary>
    [Key("description")] public string Description { get; init; } = "";
}

/// <summary>
/// Registers a tool contract owned by a node. Schemas are JSON Schema documents as JSON text.
/// The same name and version with a different contract is CONTRACT_CONFLICT; the same contract again is
/// idempotent. Reply: <see cref="ToolContractRecord"/>.
/// </summary>
[MessagePackObject]
public sealed record ToolContractRegistration
{
    /// <summary>Tool name.</summary>
    [Key("name")] public required string Name { get; init; }
    /// <summary>Contract version (semantic version text).</summary>
    [Key("version")] public required string Version { get; init; }
    /// <summary>What the tool does.</summary>
    [Key("description")] public string Description { get; init; } = "";
    /// <summary>JSON Schema of the input, as JSON text.</summary>
    [Key("inputSchema")] public required string InputSchema { get; init; }
    /// <summary>JSON Schema of the output, as JSON text.</summary>
    [Key("outputSchema")] public required string OutputSchema { get; init; }
    /// <summary>Error codes the tool may return.</summary>
    [Key("errorCodes")] public IReadOnlyList<ToolErrorCode> ErrorCodes { get; init; } = [];
    /// <summary>The owner node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
}

/// <summary>A tool contract as the registry records it.</summary>
[MessagePackObject]
public sealed record ToolContractRecord
{
    /// <summary>Tool name.</summary>
    [Key("name")] public required string Name { get; init; }
    /// <summary>Contract version.</summary>
    [Key("version")] public required string Version { get; init; }
    /// <summary>What the tool does.</summary>
    [Key("description")] public string Description { get; init; } = "";
    /// <summary>JSON Schema of the input, as JSON text.</summary>
    [Key("inputSchema")] public required string InputSchema { get; init; }
    /// <summary>JSON Schema of the output, as JSON text.</summary>
    [Key("outputSchema")] public required string OutputSchema { get; init; }
    /// <summary>Error codes the tool may return.</summary>
    [Key("errorCodes")] public IReadOnlyList<ToolErrorCode> ErrorCodes { get; init; } = [];
    /// <summary>The owner node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary><c>sha256:</c> + hex SHA-256 of the canonical contract (see PROTOCOL.md), so drift is visible.</summary>
    [Key("fingerprint")] public required string Fingerprint { get; init; }
    /// <summary>The owner's health.</summary>
    [Key("health")] public string Health { get; init; } = Protocol.Health.Healthy;
    /// <summary>When registered, Unix ms.</summary>
    [Key("registeredAt")] public long RegisteredAt { get; init; }
    /// <summary>The host whose registry holds this entry (<c>--host-name</c>) in cluster mode; null outside cluster mode (docs/CLUSTER.md).</summary>
    [Key("registryHost")] public string? RegistryHost { get; init; }
    /// <summary>The tenant owning this entry (PROTOCOL.md section 16.3); null means <c>default</c> (always so without an auth file).</summary>
    [Key("tenant")] public string? Tenant { get; init; }
}

/// <summary>Which schema of a tool a payload is validated against.</summary>
public static class PayloadDirections
{
    /// <summary>The input schema.</summary>
    public const string Input = "input";
    /// <summary>The output schema.</summary>
    public const string Output = "output";
}

/// <summary>Validates a JSON payload against a tool's input or output schema. Reply: <see cref="ValidationResult"/>.</summary>
[MessagePackObject]
public sealed record ValidatePayload
{
    /// <summary>Tool name.</summary>
    [Key("toolName")] public required string ToolName { get; init; }
    /// <summary>Contract version; null means the highest registered version.</summary>
    [Key("version")] public string? Version { get; init; }
    /// <summary><c>input</c> or <c>output</c>.</summary>
    [Key("direction")] public string Direction { get; init; } = PayloadDirections.Input;
    /// <summary>The payload, as JSON text.</summary>
    [Key("payload")] public required string Payload { get; init; }
}

/// <summary>One reason a payload does not satisfy a schema.</summary>
[MessagePackObject]
public sealed record ValidationIssue
{
    /// <summary>JSON path of the offending value, e.g. <c>#/items/0/name</c>.</summary>
    [Key("path")] public string Path { get; init; } = "";
    /// <summary>The kind of violation, e.g. <c>PropertyRequired</c>, <c>IntegerExpected</c>.</summary>
    [Key("kind")] public string Kind { get; init; } = "";
    /// <summary>A sentence for people.</summary>
    [Key("message")] public string Message { get; init; } = "";
}

/// <summary>Reply to <see cref="ValidatePayload"/>.</summary>
[MessagePackObject]
public sealed record ValidationResult
{
    /// <summary>True when the payload satisfies the schema.</summary>
    [Key("valid")] public bool Valid { get; init; }
    /// <summary>Tool name validated against.</summary>
    [Key("toolName")] public required string ToolName { get; init; }
    /// <summary>Contract version validated against.</summary>
    [Key("version")] public required string Version { get; init; }
    /// <summary>Fingerprint of the contract used.</summary>
    [Key("fingerprint")] public required string Fingerprint { get; init; }
    /// <summary>Violations; empty when valid.</summary>
    [Key("errors")] public IReadOnlyList<ValidationIssue> Errors { get; init; } = [];
}
