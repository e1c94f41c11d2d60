using NetMQ;
using Onex.Transports.Security;

namespace Onex.Transports.Zmq;

/// <summary>CurveZMQ on a NetMQ socket: the one place that sets a socket's CURVE options (docs/ENCRYPTION.md).</summary>
public static class ZmqCurve
{
    /// <summary>
    /// The key, in a zmq bus's registration metadata, of the host's CURVE public key (Z85): present when the bus's
    /// forwarder encrypts, so participants that find the bus through the registry know the key to encrypt to.
    /// </summary>
    public const string ServerKeyMetadata = "curveServerKey";

    /// <summary>
    /// Makes <paramref name="socket"/> a CURVE server with <paramref name="serverKeys"/>, or a CURVE client (with a fresh
    /// key pair) of the server whose public key is <paramref name="serverKey"/>; neither: leaves it plain. Must run
    /// before the socket binds or connects.
    /// </summary>
    public static void Apply(NetMQSocket socket, CurveKeyPair? serverKeys, string? serverKey)
    {
        if (serverKeys is not null)
        {
            socket.Options.CurveServer = true;
            socket.Options.CurveCertificate = serverKeys.ToCertificate();
        }
        else if (serverKey is not null)
        {
            socket.Options.CurveServerKey = CurveKeyPair.Decode(CurveKeyPair.CheckPublicKey(serverKey, "CurveServerKey"), "public key");
            socket.Options.CurveCertificate = new NetMQCertificate();
        }
    }
}
