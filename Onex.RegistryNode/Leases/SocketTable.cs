using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Onex.RegistryNode.Leases;

/// <summary>
/// Which local ports of a range the kernel's socket tables hold, asked in one go over Linux's <c>sock_diag</c> netlink
/// interface (what <c>ss</c> uses): TCP sockets in every state but TIME_WAIT, bound-only ones included, and UDP sockets,
/// of IPv4 and (where the machine has it) IPv6. A port is used when any socket has it as its local port.
/// </summary>
/// <remarks>
/// <para>
/// This answers for a whole batch of ports what <see cref="PortAvailability"/>'s binds answer for one: a bind on the
/// wildcard address fails exactly when some socket holds the port on an overlapping address (TIME_WAIT aside, which
/// SO_REUSEADDR lets through), and every such socket has the port as its local port in these tables, so a port the
/// tables show unused would have bound. The tables are stricter in one way: a socket bound to another address's port
/// that the wildcard check would also refuse, or a connection's local port, counts as used all the same.
/// </para>
/// <para>
/// Its cost does not grow with the batch: the kernel walks its TCP hash tables (on a 2-core machine with 262,144
/// established-table buckets, about 1.6 ms per family) where a bind check costs about 8 us per socket. So it pays only
/// for batches of a few hundred ports; <see cref="PortVerifier"/> measures both and uses whichever is cheaper.
/// Bound-only TCP sockets are listed by Linux 6.10 and later (the <c>TCP_BOUND_INACTIVE</c> pseudo-state); older
/// kernels silently leave them out, so <see cref="TryOpen"/> first checks that the kernel lists one of its own and
/// returns null otherwise (as it does anywhere else than Linux, or where netlink is refused).
/// </para>
/// </remarks>
internal sealed class SocketTable : ISocketTable
{
    // Linux constants: linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h, net/tcp_states.h.
    private const int AfNetlink = 16;
    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockDgram = 2;
    private const int SockCloexec = 0x80000;
    private const int NetlinkSockDiag = 4;
    private const ushort SockDiagByFamily = 20;
    private const ushort NlmFRequest = 0x1;
    private const ushort NlmFDump = 0x300;
    private const ushort NlmFDumpIntr = 0x10;
    private const ushort NlmsgError = 2;
    private const ushort NlmsgDone = 3;
    private const ushort InetDiagReqBytecode = 1;
    private const byte InetDiagBcSourceGe = 2;
    private const byte InetDiagBcSourceLe = 3;
    private const int TcpTimeWait = 6;
    private const int TcpBoundInactive = 13;
    private const int HeaderBytes = 16;
    private const int RequestBytes = HeaderBytes + 56 + 4 + 16;
    private const int ReceiveBytes = 64 * 1024;

    private readonly int _fd;
    private readonly bool _ipv6;
    private readonly byte[] _request = new byte[RequestBytes];
    private readonly byte[] _receive = new byte[ReceiveBytes];
    private uint _sequence;
    private int _disposed;

    private SocketTable(int fd, bool ipv6)
    {
        _fd = fd;
        _ipv6 = ipv6;
    }

    /// <summary>
    /// A table reader when this kernel lists what a free check must see (a bound-only TCP socket and a UDP socket of
    /// this process, on IPv6 as well when <paramref name="ipv6"/>); null otherwise.
    /// </summary>
    public static SocketTable? TryOpen(bool ipv6)
    {
        if (!OperatingSystem.IsLinux() || !BitConverter.IsLittleEndian) return null; // netlink's headers are in host order: written here as little-endian
        var fd = Native.Socket(AfNetlink, SockDgram | SockCloexec, NetlinkSockDiag);
        if (fd < 0) return null;
        var table = new SocketTable(fd, ipv6);
        try
        {
            if (table.ListsOwnSockets()) return table;
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            // No answer from the kernel: the binds will do.
        }
        table.Dispose();
        return null;
    }

    /// <summary>
    /// Marks in <paramref name="used"/> (indexed by port - <paramref name="first"/>) each port from
    /// <paramref name="first"/> to <paramref name="last"/> that a socket holds; false when the tables could not be read
    /// whole (an error, or a dump the kernel reports interrupted), and then <paramref name="used"/> means nothing.
    /// </summary>
    public bool TryFindUsed(int first, int last, Span<bool> used)
    {
        if (first < 1 || last > 65535 || last < first || used.Length < last - first + 1) throw new ArgumentOutOfRangeException(nameof(last));
        used[..(last - first + 1)].Clear();
        return Dump(AfInet, ProtocolType.Tcp, first, last, used)
            && Dump(AfInet, ProtocolType.Udp, first, last, used)
            && (!_ipv6 || (Dump(AfInet6, ProtocolType.Tcp, first, last, used) && Dump(AfInet6, ProtocolType.Udp, first, last, used)));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _ = Native.Close(_fd); // once: the number may belong to another file afterwards
    }

    private bool ListsOwnSockets()
    {
        var sockets = new List<Socket>();
        try
        {
            // Bound and nothing more: the case older kernels leave out of their tables.
            sockets.Add(BoundOnly(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            sockets.Add(BoundOnly(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            if (_ipv6)
            {
                sockets.Add(BoundOnly(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp));
                sockets.Add(BoundOnly(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp));
            }
            foreach (var socket in sockets)
            {
                var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
                var found = new bool[1];
                var family = socket.AddressFamily == AddressFamily.InterNetwork ? AfInet : AfInet6;
                if (!Dump(family, socket.ProtocolType, port, port, found) || !found[0]) return false;
            }
            return true;
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }

    private static Socket BoundOnly(AddressFamily family, SocketType type, ProtocolType protocol)
    {
        var socket = new Socket(family, type, protocol);
        try
        {
            if (family == AddressFamily.InterNetworkV6) socket.DualMode = false;
            socket.Bind(new IPEndPoint(family == AddressFamily.InterNetwork ? IPAddress.Loopback : IPAddress.IPv6Loopback, 0));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>One dump of <paramref name="protocol"/>'s sockets of <paramref name="family"/> whose local port lies in the range.</summary>
    private bool Dump(int family, ProtocolType protocol, int first, int last, Span<bool> used)
    {
        var sequence = ++_sequence;
        WriteRequest(family, protocol, first, last, sequence);
        if (Native.Send(_fd, _request, _request.Length, 0) != _request.Length) throw new SocketException(Marshal.GetLastPInvokeError());
        while (true)
        {
            var length = Native.Receive(_fd, _receive, _receive.Length, 0);
            if (length < 0) throw new SocketException(Marshal.GetLastPInvokeError());
            var messages = _receive.AsSpan(0, (int)length);
            while (messages.Length >= HeaderBytes)
            {
                var size = BinaryPrimitives.ReadInt32LittleEndian(messages);
                var type = BinaryPrimitives.ReadUInt16LittleEndian(messages[4..]);
                var flags = BinaryPrimitives.ReadUInt16LittleEndian(messages[6..]);
                var ofSequence = BinaryPrimitives.ReadUInt32LittleEndian(messages[8..]);
                if (size < HeaderBytes || size > messages.Length) return false;
                if (ofSequence == sequence)
                {
                    if (type == NlmsgError) return false;
                    if ((flags & NlmFDumpIntr) != 0) return false; // the tables changed under the dump: it may have missed sockets
                    if (type == NlmsgDone) return true;
                    if (type == SockDiagByFamily && size >= HeaderBytes + 4 + 4)
                    {
                        // inet_diag_msg: family, state, timer, retrans, then the socket id: source port first, network order.
                        var state = messages[HeaderBytes + 1];
                        var port = BinaryPrimitives.ReadUInt16BigEndian(messages[(HeaderBytes + 4)..]);
                        if (state != TcpTimeWait && port >= first && port <= last) used[port - first] = true;
                    }
                }
                var aligned = (size + 3) & ~3;
                if (aligned >= messages.Length) break;
                messages = messages[aligned..];
            }
        }
    }

    private void WriteRequest(int family, ProtocolType protocol, int first, int last, uint sequence)
    {
        var request = _request.AsSpan();
        request.Clear();
        // nlmsghdr
        BinaryPrimitives.WriteUInt32LittleEndian(request, RequestBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], SockDiagByFamily);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], NlmFRequest | NlmFDump);
        BinaryPrimitives.WriteUInt32LittleEndian(request[8..], sequence);
        // inet_diag_req_v2: family, protocol, extensions, pad, states; the socket id stays zero (a dump).
        var body = request[HeaderBytes..];
        body[0] = (byte)family;
        body[1] = (byte)protocol;
        var states = protocol == ProtocolType.Tcp ? ~(1u << TcpTimeWait) | (1u << TcpBoundInactive) : uint.MaxValue;
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], states);
        // The bytecode attribute: source port >= first (else reject), then <= last (else reject). Each test is two
        // 4-byte ops (code, yes, no; the port in the second op's "no"); jumping past the end by 4 rejects.
        var attribute = body[56..];
        BinaryPrimitives.WriteUInt16LittleEndian(attribute, 4 + 16);
        BinaryPrimitives.WriteUInt16LittleEndian(attribute[2..], InetDiagReqBytecode);
        var code = attribute[4..];
        WriteOp(code, InetDiagBcSourceGe, yes: 8, no: 16 + 4);
        WriteOp(code[4..], 0, 0, (ushort)first);
        WriteOp(code[8..], InetDiagBcSourceLe, yes: 8, no: 8 + 4);
        WriteOp(code[12..], 0, 0, (ushort)last);
    }

    private static void WriteOp(Span<byte> op, byte code, byte yes, ushort no)
    {
        op[0] = code;
        op[1] = yes;
        BinaryPrimitives.WriteUInt16LittleEndian(op[2..], no);
    }

    private static class Native
    {
        [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
        public static extern int Socket(int domain, int type, int protocol);

        [DllImport("libc", EntryPoint = "send", SetLastError = true)]
        public static extern nint Send(int fd, byte[] buffer, nint length, int flags);

        [DllImport("libc", EntryPoint = "recv", SetLastError = true)]
        public static extern nint Receive(int fd, byte[] buffer, nint length, int flags);

        [DllImport("libc", EntryPoint = "close", SetLastError = true)]
        public static extern int Close(int fd);
    }
}

/// <summary>What the free check's verifier reads a batch from (<see cref="SocketTable"/>; tests give a table that fails on cue).</summary>
internal interface ISocketTable : IDisposable
{
    /// <summary>See <see cref="SocketTable.TryFindUsed"/>: false when the tables could not be read whole; a refusal by the kernel throws <see cref="SocketException"/>.</summary>
    bool TryFindUsed(int first, int last, Span<bool> used);
}
