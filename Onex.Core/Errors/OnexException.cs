namespace Onex.Errors;

/// <summary>
/// The root of every exception OnexBus throws on purpose. <see cref="Code"/> is a code from
/// <see cref="ErrorCodes"/>; <see cref="Details"/> carries machine-readable context.
/// </summary>
public class OnexException : Exception
{
    private static readonly IReadOnlyDictionary<string, string> NoDetails = new Dictionary<string, string>();

    /// <summary>Creates an exception with a catalogue code.</summary>
    public OnexException(string code, string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
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

    /// <summary>Creates the most specific exception type for a code received over the wire from <paramref name="origin"/>.</summary>
    public static OnexException FromError(string code, string message, IReadOnlyDictionary<string, string>? details = null, string? origin = null)
    {
        var exception = Create(code, message, details);
        exception.Origin = origin;
        return exception;
    }

    private static OnexException Create(string code, string message, IReadOnlyDictionary<string, string>? details) => code switch
    {
        ErrorCodes.Malformed => new MalformedMessageException(message, details),
        ErrorCodes.TooLarge => new MessageTooLargeException(message, details),
        ErrorCodes.UnsupportedVersion => new UnsupportedVersionException(message, details),
        ErrorCodes.LeaseNotFound or ErrorCodes.LeaseExpired or ErrorCodes.Fenced or ErrorCodes.NotOwner
            or ErrorCodes.PortExhausted or ErrorCodes.PortUnavailable => new LeaseException(code, message, details),
        ErrorCodes.SchemaInvalid or ErrorCodes.ContractConflict => new ContractException(code, message, details),
        ErrorCodes.NotFound => new NotFoundException(message, details),
        ErrorCodes.Unavailable => new UnavailableException(message, details),
        ErrorCodes.Unauthenticated or ErrorCodes.PermissionDenied or ErrorCodes.QuotaExceeded => new AccessDeniedException(code, message, details),
        _ => new OnexException(code, message, details),
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

/// <summary>A port-lease failure: exhausted or unavailable ports, unknown or expired leases, fencing and ownership.</summary>
public sealed class LeaseException(string code, string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(code, message, details);

/// <summary>A tool-contract failure: an invalid schema or a conflicting registration.</summary>
public sealed class ContractException(string code, string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(code, message, details);

/// <summary>The named node, bus or tool does not exist (<see cref="ErrorCodes.NotFound"/>).</summary>
public sealed class NotFoundException(string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(ErrorCodes.NotFound, message, details);

/// <summary>A peer could not be reached or did not answer in time (<see cref="ErrorCodes.Unavailable"/>).</summary>
public sealed class UnavailableException(string message, IReadOnlyDictionary<string, string>? details = null, Exception? innerException = null)
    : OnexException(ErrorCodes.Unavailable, message, details, innerException);

/// <summary>
/// Access control refused the request: no or an unknown token (<see cref="ErrorCodes.Unauthenticated"/>), a role or
/// tenant that does not allow it (<see cref="ErrorCodes.PermissionDenied"/>), or a tenant quota (<see cref="ErrorCodes.QuotaExceeded"/>).
/// </summary>
public sealed class AccessDeniedException(string code, string message, IReadOnlyDictionary<string, string>? details = null)
    : OnexException(code, message, details);
