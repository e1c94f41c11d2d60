using Onex.Errors;

namespace Onex.RegistryNode.Server;

/// <summary>Builds the exceptions the handlers throw; the dispatcher turns each into an Error reply.</summary>
internal static class Reject
{
    public const int MaxNameLength = 256;
    public const int MaxTextLength = 4096;

    public static InvalidArgumentException InvalidArgument(string field, string message, params (string Key, string Value)[] extra) =>
        new(message, Details(field, extra));

    public static MalformedMessageException Malformed(string field, string message) =>
        new(message, Details(field, []));

    public static NotFoundException NotFound(string message, params (string Key, string Value)[] details) =>
        new(message, Details(null, details));

    /// <summary>The exception of a lease-handling <paramref name="code"/> (PORT_EXHAUSTED, LEASE_NOT_FOUND, FENCED, NOT_OWNER, ...).</summary>
    public static OnexException Lease(string code, string message, params (string Key, string Value)[] details) =>
        OnexException.Create(code, message, Details(null, details));

    /// <summary>The exception of a contract <paramref name="code"/> (SCHEMA_INVALID, CONTRACT_CONFLICT).</summary>
    public static OnexException Contract(string code, string message, params (string Key, string Value)[] details) =>
        OnexException.Create(code, message, Details(null, details));

    public static NotOwnerException NotOwner(string message, params (string Key, string Value)[] details) =>
        new(message, Details(null, details));

    /// <summary>
    /// The length of <paramref name="value"/> in characters (Unicode code points), as JSON Schema's <c>maxLength</c>
    /// counts: a character outside the Basic Multilingual Plane (an emoji) is two UTF-16 units but one character.
    /// </summary>
    public static int LengthOf(string value)
    {
        var length = value.Length;
        for (var i = 0; i + 1 < value.Length; i++)
            if (char.IsSurrogatePair(value[i], value[i + 1])) { length--; i++; }
        return length;
    }

    /// <summary>A required identifier: present, not blank, at most <see cref="MaxNameLength"/> characters.</summary>
    public static void IfBlank(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw InvalidArgument(field, $"Field '{field}' must not be empty.");
        if (value.Length > MaxNameLength && LengthOf(value) > MaxNameLength)
            throw InvalidArgument(field, $"Field '{field}' is longer than {MaxNameLength} characters.", ("max", MaxNameLength.ToString()));
    }

    /// <summary>
    /// A node id or bus name (PROTOCOL.md section 6): 1 to <see cref="MaxNameLength"/> characters, no whitespace
    /// and no control characters.
    /// </summary>
    public static void IfBadIdentifier(string? value, string field)
    {
        IfBlank(value, field);
        foreach (var c in value!)
            if (char.IsWhiteSpace(c) || char.IsControl(c))
                throw InvalidArgument(field, $"Field '{field}' must not contain whitespace or control characters.", ("value", value));
    }

    /// <summary>Optional free text: at most <see cref="MaxTextLength"/> characters.</summary>
    public static void IfTooLong(string? value, string field, int limit = MaxTextLength)
    {
        if (value is not null && value.Length > limit && LengthOf(value) > limit)
            throw InvalidArgument(field, $"Field '{field}' is longer than {limit} characters.", ("max", limit.ToString()));
    }

    /// <summary>Labels: at most 64 entries, keys and values within the text limits.</summary>
    public static void IfBadMetadata(IReadOnlyDictionary<string, string>? metadata, string field)
    {
        if (metadata is null) return;
        if (metadata.Count > 64)
            throw InvalidArgument(field, $"Field '{field}' has more than 64 entries.", ("max", "64"));
        foreach (var (key, value) in metadata)
        {
            if (string.IsNullOrEmpty(key) || LengthOf(key) > MaxNameLength)
                throw InvalidArgument(field, $"Field '{field}' has an empty or overlong key.");
            if (value is null || LengthOf(value) > MaxTextLength)
                throw InvalidArgument(field, $"Field '{field}' has a nil or overlong value for key '{key}'.");
        }
    }

    private static Dictionary<string, string> Details(string? field, (string Key, string Value)[] extra)
    {
        var details = new Dictionary<string, string>();
        if (field is not null) details["field"] = field;
        foreach (var (key, value) in extra) details[key] = value;
        return details;
    }
}
