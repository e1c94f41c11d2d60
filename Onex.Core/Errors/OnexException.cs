namespace Onex.Errors;

/// <summary>
/// The root of every exception OnexBus throws on purpose: abstract, with one sealed type per catalogue code
/// (<see cref="ErrorCodes"/>), grouped under abstract categories where callers catch them together
/// (<see cref="LeaseException"/>, <see cref="ContractException"/>, <see cref="AccessDeniedException"/>).
/// <see cref="Code"/> is the code; <see cref="Details"/> carries machine-readable context.
/// </summary>
public abstract class OnexException : Exception
{
    private static readonly IReadOnlyDictionary<string, string> NoDetails = new Dictionary<string, string>();

    /// <summary>Creates an exception with a catalogue code.</summary>
    protected OnexException(string code, string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Code = code;
        Details = details ?? NoDetails;
    }

    /// <summary>The protocol error code (see <see cref="ErrorCodes"/>).</summary>
    public string Code { get; }

    /// <summary>Machine-readable context, for example the offending field or the limit that was exceeded.</summary>
    public IReadOnlyDictionary<string, string> Details { get; }

    /// <summary>
    /// Who reported the error: null when it was raised in this process (a local bind failure, a bad option), else the
    /// peer that answered with it (e.g. <c>registry at tcp://127.0.0.1:5750</c>).
    /// </summary>
    public string? Origin { get; private set; }

    /// <summary>Creates the exception type of a code received over the wire from <paramref name="origin"/>.</summary>
    public static OnexException FromError(string code, string message, IReadOnlyDictionary<string, string>? details = null, string? origin = null)
    {
        var exception = Create(code, message, details);
        exception.Origin = origin;
        return exception;
    }

    /// <summary>
    /// Creates the exception type of <paramref name="code"/>; a code this build does not know (from a newer peer)
    /// becomes an <see cref="UnknownErrorException"/> that keeps it.
    /// </summary>
    public static OnexException Create(string code, string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null) => code switch
    {
        ErrorCodes.Malformed => new MalformedMessageException(message, details, innerException),
        ErrorCodes.UnsupportedVersion => new UnsupportedVersionException(message, details),
        ErrorCodes.UnknownMessageType => new UnknownMessageTypeException(message, details),
        ErrorCodes.TooLarge => new MessageTooLargeException(message, details),
        ErrorCodes.InvalidArgument => new InvalidArgumentException(message, details, innerException),
        ErrorCodes.PortExhausted => new PortExhaustedException(message, details),
        ErrorCodes.PortUnavailable => new PortUnavailableException(message, details, innerException),
        ErrorCodes.LeaseNotFound => new LeaseNotFoundException(message, details),
        ErrorCodes.LeaseExpired => new LeaseExpiredException(message, details),
        ErrorCodes.Fenced => new FencedException(message, details),
        ErrorCodes.NotOwner => new NotOwnerException(message, details),
        ErrorCodes.SchemaInvalid => new SchemaInvalidException(message, details),
        ErrorCodes.ContractConflict => new ContractConflictException(message, details),
        ErrorCodes.NotFound => new NotFoundException(message, details),
        ErrorCodes.Unavailable => new UnavailableException(message, details, innerException),
        ErrorCodes.Internal => new InternalErrorException(message, details, innerException),
        ErrorCodes.Unauthenticated => new UnauthenticatedException(message, details),
        ErrorCodes.PermissionDenied => new PermissionDeniedException(message, details),
        ErrorCodes.QuotaExceeded => new QuotaExceededException(message, details),
        ErrorCodes.ResyncRequired => new ResyncRequiredException(message, details),
        ErrorCodes.WatchFellBehind => new WatchFellBehindException(message, details),
        ErrorCodes.WatchExpired => new WatchExpiredException(message, details),
        _ => new UnknownErrorException(code, message, details, innerException),
    };
}

/// <summary>Bytes that are not a valid message (<see cref="ErrorCodes.Malformed"/>). Nothing was partially decoded.</summary>
public sealed class MalformedMessageException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(ErrorCodes.Malformed, message, details, innerException);

/// <summary>A frame or payload larger than the configured limit (<see cref="ErrorCodes.TooLarge"/>).</summary>
public sealed class MessageTooLargeException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.TooLarge, message, details);

/// <summary>A protocol version this side does not speak (<see cref="ErrorCodes.UnsupportedVersion"/>).</summary>
public sealed class UnsupportedVersionException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.UnsupportedVersion, message, details);

/// <summary>A message type the receiver does not handle (<see cref="ErrorCodes.UnknownMessageType"/>).</summary>
public sealed class UnknownMessageTypeException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.UnknownMessageType, message, details);

/// <summary>A well-typed field whose value is out of range or otherwise unacceptable (<see cref="ErrorCodes.InvalidArgument"/>); <c>field</c> in the details names it.</summary>
public sealed class InvalidArgumentException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(ErrorCodes.InvalidArgument, message, details, innerException);

/// <summary>A port-lease failure: exhausted or unavailable ports, unknown or expired leases, fencing. Catch this to handle them together.</summary>
public abstract class LeaseException(string code, string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(code, message, details, innerException);

/// <summary>No free port is left in the pool (<see cref="ErrorCodes.PortExhausted"/>).</summary>
public sealed class PortExhaustedException(string message, IReadOnlyDictionary<string, string>? details = null)
    : LeaseException(ErrorCodes.PortExhausted, message, details);

/// <summary>
/// The port asked for is not in the pool, is leased or quarantined, or a local bind found it in use
/// (<see cref="ErrorCodes.PortUnavailable"/>).
/// </summary>
public sealed class PortUnavailableException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : LeaseException(ErrorCodes.PortUnavailable, message, details, innerException);

/// <summary>No lease with that id exists (<see cref="ErrorCodes.LeaseNotFound"/>).</summary>
public sealed class LeaseNotFoundException(string message, IReadOnlyDictionary<string, string>? details = null)
    : LeaseException(ErrorCodes.LeaseNotFound, message, details);

/// <summary>The lease existed but has expired (<see cref="ErrorCodes.LeaseExpired"/>).</summary>
public sealed class LeaseExpiredException(string message, IReadOnlyDictionary<string, string>? details = null)
    : LeaseException(ErrorCodes.LeaseExpired, message, details);

/// <summary>The fencing token presented is not the lease's current one (<see cref="ErrorCodes.Fenced"/>).</summary>
public sealed class FencedException(string message, IReadOnlyDictionary<string, string>? details = null)
    : LeaseException(ErrorCodes.Fenced, message, details);

/// <summary>
/// The caller is not the node that owns the lease, bus, tool or node record it addressed (<see cref="ErrorCodes.NotOwner"/>).
/// Not a <see cref="LeaseException"/>: registering a bus another node owns raises this too.
/// </summary>
public sealed class NotOwnerException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.NotOwner, message, details);

/// <summary>A tool-contract failure: an invalid schema or a conflicting registration. Catch this to handle both.</summary>
public abstract class ContractException(string code, string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(code, message, details);

/// <summary>A tool's JSON Schema is not one the registry can use (<see cref="ErrorCodes.SchemaInvalid"/>); the details name the keyword.</summary>
public sealed class SchemaInvalidException(string message, IReadOnlyDictionary<string, string>? details = null)
    : ContractException(ErrorCodes.SchemaInvalid, message, details);

/// <summary>The same tool name and version is registered with a different contract (<see cref="ErrorCodes.ContractConflict"/>).</summary>
public sealed class ContractConflictException(string message, IReadOnlyDictionary<string, string>? details = null)
    : ContractException(ErrorCodes.ContractConflict, message, details);

/// <summary>The named node, bus or tool does not exist (<see cref="ErrorCodes.NotFound"/>).</summary>
public sealed class NotFoundException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.NotFound, message, details);

/// <summary>A peer could not be reached or did not answer in time (<see cref="ErrorCodes.Unavailable"/>).</summary>
public sealed class UnavailableException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(ErrorCodes.Unavailable, message, details, innerException);

/// <summary>The peer failed while handling a valid request; its state is unchanged (<see cref="ErrorCodes.Internal"/>).</summary>
public sealed class InternalErrorException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(ErrorCodes.Internal, message, details, innerException);

/// <summary>
/// Access control refused the request: no or an unknown token, a role or tenant that does not allow it, or a
/// tenant quota. Catch this to handle them together.
/// </summary>
public abstract class AccessDeniedException(string code, string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(code, message, details);

/// <summary>The registry requires a token and the request carried none, or one it does not know (<see cref="ErrorCodes.Unauthenticated"/>).</summary>
public sealed class UnauthenticatedException(string message, IReadOnlyDictionary<string, string>? details = null)
    : AccessDeniedException(ErrorCodes.Unauthenticated, message, details);

/// <summary>The token is known, but its role or tenant does not allow the request (<see cref="ErrorCodes.PermissionDenied"/>).</summary>
public sealed class PermissionDeniedException(string message, IReadOnlyDictionary<string, string>? details = null)
    : AccessDeniedException(ErrorCodes.PermissionDenied, message, details);

/// <summary>The request would take the caller's tenant over a quota; the details give the limit (<see cref="ErrorCodes.QuotaExceeded"/>).</summary>
public sealed class QuotaExceededException(string message, IReadOnlyDictionary<string, string>? details = null)
    : AccessDeniedException(ErrorCodes.QuotaExceeded, message, details);

/// <summary>A watch asked to replay changes the registry no longer holds, or of another epoch (<see cref="ErrorCodes.ResyncRequired"/>): take a snapshot.</summary>
public sealed class ResyncRequiredException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.ResyncRequired, message, details);

/// <summary>A watch's stream ended because its client fell behind (<see cref="ErrorCodes.WatchFellBehind"/>): resync by snapshot.</summary>
public sealed class WatchFellBehindException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.WatchFellBehind, message, details);

/// <summary>A watch's stream ended because its client sent nothing for the idle timeout (<see cref="ErrorCodes.WatchExpired"/>).</summary>
public sealed class WatchExpiredException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.WatchExpired, message, details);

/// <summary>A code this build does not know, from a newer peer; <see cref="OnexException.Code"/> keeps it.</summary>
public sealed class UnknownErrorException(string code, string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(code, message, details, innerException);
