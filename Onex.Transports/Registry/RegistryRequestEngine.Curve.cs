namespace Onex.Transports.Registry;

internal sealed partial class RegistryRequestEngine
{
    /// <summary>
    /// Why a registry that closes our connections during the ZeroMQ handshake does not answer: the CURVE settings of the
    /// two sides differ. Without a key, the registry most likely requires CURVE; with one, it is not the registry's key
    /// (or the registry does not encrypt). ZeroMQ itself retries silently, so this is the only place it is said.
    /// </summary>
    private string HandshakeHint() => ServerKey is null
        ? $"it closed the connection during the ZeroMQ handshake {_channel.DropsWithoutReply} time(s): it most likely encrypts with CURVE; " +
          $"set {RegistryEndpoints.ServerKeyVariable} (or RegistryClientOptions.ServerKey) to its public key (the registry logs it at start; `onex auth keygen` printed it)"
        : $"it closed the connection during the ZeroMQ handshake {_channel.DropsWithoutReply} time(s): the CURVE server key {ServerKey} " +
          $"({RegistryEndpoints.ServerKeyVariable} or RegistryClientOptions.ServerKey) is not the registry's, or the registry does not encrypt";
}
