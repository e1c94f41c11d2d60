using MessagePack;

namespace Onex.Protocol;

/// <summary>Success reply for requests that return nothing else.</summary>
[MessagePackObject]
public sealed record Ack
{
    /// <summary>Always true.</summary>
    [Key("ok")] public bool Ok { get; init; } = true;
}

/// <summary>Failure reply: a stable code from the catalogue, a sentence, and machine-readable details.</summary>
[MessagePackObject]
public sealed record Error
{
    /// <summary>A code from <see cref="Errors.ErrorCodes"/>.</summary>
    [Key("code")] public required string Code { get; init; }
    /// <summary>What went wrong, for people.</summary>
    [Key("message")] public required string Message { get; init; }
    /// <summary>Context, e.g. <c>field</c>, <c>limit</c>, <c>leaseId</c>.</summary>
    [Key("details")] public IReadOnlyDictionary<string, string> Details { get; init; } = new Dictionary<string, string>();
}
