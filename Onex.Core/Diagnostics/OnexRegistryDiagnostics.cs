using System.Diagnostics;
using Onex.Protocol;

namespace Onex.Diagnostics;

/// <summary>
/// Tracing of registry requests: an <see cref="ActivitySource"/> named <see cref="Name"/> (<c>Onex.Registry</c>, the
/// name of the node's meter too). A client request is a client span <c>registry {messageType}</c> whose W3C context
/// travels in the envelope's optional <c>traceparent</c> field (PROTOCOL.md, "Trace context"); the registry answers
/// it inside a server span that is the client span's child. With nothing listening, no span and no field.
/// </summary>
public static class OnexRegistryDiagnostics
{
    /// <summary>The name of the registry's activity source.</summary>
    public const string Name = "Onex.Registry";

    /// <summary>The longest <c>traceparent</c> a registry reads (a version-00 value is 55 characters); longer ones are ignored.</summary>
    public const int MaxTraceParentLength = 128;

    /// <summary>The source of client and server spans.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name, typeof(OnexRegistryDiagnostics).Assembly.GetName().Version?.ToString());

    /// <summary>Starts the client span of a request of <paramref name="messageType"/>; null when nothing listens.</summary>
    public static Activity? StartClientActivity(string messageType)
    {
        if (!ActivitySource.HasListeners()) return null;
        var activity = ActivitySource.StartActivity("registry " + messageType, ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("rpc.system", "onex-registry");
            activity.SetTag("rpc.method", messageType);
        }
        return activity;
    }

    /// <summary>
    /// Marks <paramref name="activity"/> (a client or server span) as failed by <paramref name="error"/>, following
    /// OpenTelemetry's conventions: status <see cref="ActivityStatusCode.Error"/> with the message as description, and
    /// <c>error.type</c> = the protocol error code (<see cref="Errors.OnexException.Code"/>, e.g. <c>NOT_FOUND</c>;
    /// <c>UNAVAILABLE</c> for a request that timed out), or the exception's type name for anything else. Returns false,
    /// so it can sit in an exception filter without catching.
    /// </summary>
    public static bool RecordFailure(Activity? activity, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (activity is null) return false;
        RecordError(activity, error is Errors.OnexException onex ? onex.Code : error.GetType().FullName ?? error.GetType().Name, error.Message);
        return false;
    }

    /// <summary>
    /// Marks <paramref name="activity"/> as failed with the protocol error <paramref name="code"/> (the tags
    /// <see cref="RecordFailure"/> sets: status <see cref="ActivityStatusCode.Error"/> described by
    /// <paramref name="message"/>, <c>error.type</c> = <paramref name="code"/>). The registry's server span of a request
    /// answered with an Error reply ends this way, with the reply's code (<c>INTERNAL</c> when a handler failed).
    /// </summary>
    public static void RecordError(Activity? activity, string code, string message)
    {
        ArgumentNullException.ThrowIfNull(code);
        if (activity is null) return;
        activity.SetStatus(ActivityStatusCode.Error, message);
        activity.SetTag("error.type", code);
    }

    /// <summary>
    /// Starts the server span answering <paramref name="envelope"/>, a child of the client's span when the envelope
    /// carries a valid <c>traceparent</c>; null when nothing listens.
    /// </summary>
    public static Activity? StartServerActivity(RegistryEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (!ActivitySource.HasListeners()) return null;
        ActivityContext.TryParse(envelope.TraceParent, null, isRemote: true, out var parent);
        var activity = ActivitySource.StartActivity("registry " + envelope.MessageType, ActivityKind.Server, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("rpc.system", "onex-registry");
            activity.SetTag("rpc.method", envelope.MessageType);
            activity.SetTag("onex.registry.client_id", envelope.ClientId);
        }
        return activity;
    }
}
