namespace Onex.Bus;

/// <summary>
/// A bus backend that can check, on demand, that its bus answers now, beyond the connection state it follows in
/// <see cref="IEventBus.Health"/>: JetStream asks the server for the bus's stream, ZeroMQ sends a probe through the
/// forwarder and waits for it to come back, a Unix-socket participant checks the socket file. Health checks
/// (Onex.Extensions.Hosting's <c>AddOnexEventBus</c>) call it on every check.
/// </summary>
public interface IEventBusProbe
{
    /// <summary>
    /// Checks that the bus answers and returns a sentence saying what answered (e.g. the stream and its event count).
    /// </summary>
    /// <exception cref="Errors.UnavailableException">The bus did not answer; the message says what failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    ValueTask<string> ProbeAsync(CancellationToken cancellationToken = default);
}
