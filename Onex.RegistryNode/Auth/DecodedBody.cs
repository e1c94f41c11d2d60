using Onex.Protocol;

namespace Onex.RegistryNode.Auth;

/// <summary>
/// The body of the request envelope decoded last on this thread, so that with access control on, the gate's checks
/// (which read a lease id or a node id) and the request's handler decode one request's body once, not twice (the
/// second decoding was about a third of what checking a token cost per request). Keyed by the envelope object: a
/// rewritten envelope (an announcement stamped with its tenant) is another object and is decoded afresh.
/// </summary>
internal static class DecodedBody
{
    [ThreadStatic] private static RegistryEnvelope? t_envelope;
    [ThreadStatic] private static object? t_body;

    /// <summary><paramref name="envelope"/>'s body as <typeparamref name="T"/>, decoded at most once per envelope (decoding errors as <see cref="RegistryEnvelope.BodyAs{T}"/>).</summary>
    public static T Of<T>(RegistryEnvelope envelope) where T : class
    {
        if (ReferenceEquals(t_envelope, envelope) && t_body is T decoded) return decoded;
        var body = envelope.BodyAs<T>();
        t_envelope = envelope;
        t_body = body;
        return body;
    }
}
