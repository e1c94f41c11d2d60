using System.Buffers.Binary;
using System.Net.Sockets;

namespace Onex.Transports.Ipc;

/// <summary>
/// Who is on the other end of a Unix-socket connection, as the kernel recorded it when the peer connected
/// (<c>SO_PEERCRED</c>: its pid, uid and gid; Linux <c>struct ucred</c>). The peer cannot forge it.
/// </summary>
internal readonly record struct IpcPeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    /// <summary>Reads the peer's credentials; false when the kernel does not give them (not a connected Unix socket).</summary>
    public static bool TryRead(Socket socket, out IpcPeerCredentials peer)
    {
        Span<byte> ucred = stackalloc byte[12];
        try
        {
            if (socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred) == ucred.Length)
            {
                peer = new IpcPeerCredentials(
                    BinaryPrimitives.ReadInt32LittleEndian(ucred),
                    BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]),
                    BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]));
                return true;
            }
        }
        catch (SocketException)
        {
            // reported as unknown below
        }
        peer = default;
        return false;
    }
}
