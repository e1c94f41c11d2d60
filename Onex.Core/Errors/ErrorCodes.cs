namespace Onex.Errors;

/// <summary>
/// The stable error-code catalogue of the OnexBus protocol. Codes never change meaning once published;
/// <c>contracts/PROTOCOL.md</c> documents when each one is returned.
/// </summary>
public static class ErrorCodes
{
    /// <summary>The bytes are not a valid message: bad MessagePack, wrong field types, missing fields, bad frame count.</summary>
    public const string Malformed = "MALFORMED";
    /// <summary>The message carries a protocol version this node does not speak.</summary>
    public const string UnsupportedVersion = "UNSUPPORTED_VERSION";
    /// <summary>The message type is not one the receiver handles.</summary>
    public const string UnknownMessageType = "UNKNOWN_MESSAGE_TYPE";
    /// <summary>A frame or payload exceeds the documented size limit.</summary>
    public const string TooLarge = "TOO_LARGE";
    /// <summary>A field is well-typed but its value is out of range or otherwise unacceptable.</summary>
    public const string InvalidArgument = "INVALID_ARGUMENT";
    /// <summary>No free port is left in the pool.</summary>
    public const string PortExhausted = "PORT_EXHAUSTED";
    /// <summary>The port asked for is not in the pool, is leased, or is in quarantine.</summary>
    public const string PortUnavailable = "PORT_UNAVAILABLE";
    /// <summary>No lease with that id exists.</summary>
    public const string LeaseNotFound = "LEASE_NOT_FOUND";
    /// <summary>The lease existed but has expired.</summary>
    public const string LeaseExpired = "LEASE_EXPIRED";
    /// <summary>The fencing token presented is not the lease's current token.</summary>
    public const string Fenced = "FENCED";
    /// <summary>The caller is not the node that owns the lease or registration.</summary>
    public const string NotOwner = "NOT_OWNER";
    /// <summary>A tool's JSON Schema is not a valid schema.</summary>
    public const string SchemaInvalid = "SCHEMA_INVALID";
    /// <summary>The same tool name and version is already registered with a different contract.</summary>
    public const string ContractConflict = "CONTRACT_CONFLICT";
    /// <summary>The named node, bus or tool does not exist.</summary>
    public const string NotFound = "NOT_FOUND";
    /// <summary>The peer (registry, bus backend) cannot be reached or did not answer in time.</summary>
    public const string Unavailable = "UNAVAILABLE";
    /// <summary>The receiver failed while handling a valid request; its state is unchanged.</summary>
    public const string Internal = "INTERNAL";
    /// <summary>The registry requires a token (it has an auth file) and the request carries none, or one it does not know.</summary>
    public const string Unauthenticated = "UNAUTHENTICATED";
    /// <summary>The token is known, but its role or tenant does not allow this request.</summary>
    public const string PermissionDenied = "PERMISSION_DENIED";
    /// <summary>The request would take the caller's tenant over one of its quotas (leases, nodes, buses, tools, schema bytes, requests per second).</summary>
    public const string QuotaExceeded = "QUOTA_EXCEEDED";
    /// <summary>A <c>Watch</c> asked to replay from a sequence the registry no longer holds (or of another epoch): take a snapshot and watch from it.</summary>
    public const string ResyncRequired = "RESYNC_REQUIRED";
    /// <summary>A watch's stream ended because its client fell behind (more undelivered messages than the registry holds for it): resync by snapshot.</summary>
    public const string WatchFellBehind = "WATCH_FELL_BEHIND";
    /// <summary>A watch's stream ended because its client sent nothing (no credit, no keep-alive) for the watch's idle timeout.</summary>
    public const string WatchExpired = "WATCH_EXPIRED";
}
