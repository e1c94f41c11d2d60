using System.Text;

namespace Onex.Transports.Zmq;

/// <summary>
/// Control messages that share the event sockets: <c>[control topic][empty]</c>. A control topic starts with
/// <c>$</c>, which no event topic may contain (<see cref="Bus.Topic"/>), so no subscription filter except the empty
/// one (patterns such as <c>&gt;</c>) lets them through, and the receive loop recognises and skips them.
/// </summary>
internal static class ZmqControl
{
    /// <summary>The first byte of every control topic.</summary>
    public const byte Marker = (byte)'$';

    /// <summary>
    /// A probe topic unique to one handshake of one subscriber. It ends with a second <c>$</c> so that no probe topic is
    /// a prefix of another (<c>...1$</c> vs <c>...10$</c>): ZeroMQ filters by prefix, and a probe must only be let
    /// through by its own subscription.
    /// </summary>
    public static byte[] ProbeTopic(string subscriberId, long sequence) =>
        Encoding.ASCII.GetBytes($"$onex.probe.{subscriberId}.{sequence}$");
}
