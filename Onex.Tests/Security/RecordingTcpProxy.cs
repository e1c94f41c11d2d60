using System.Net;
using System.Net.Sockets;

namespace Onex.Tests.Security;

/// <summary>
/// A loopback TCP proxy that records every byte it forwards, both ways: what anyone watching the wire between client
/// and server would see. Listens on a port the test leased; stops its listener and every connection on dispose.
/// Bounded: at most <see cref="MaxRecordedBytes"/> are kept (a test's traffic is far less).
/// </summary>
internal sealed class RecordingTcpProxy : IAsyncDisposable
{
    public const int MaxRecordedBytes = 16 * 1024 * 1024;

    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly MemoryStream _recorded = new();
    private readonly List<Task> _pumps = [];
    private readonly List<TcpClient> _connections = [];
    private readonly Task _accepting;
    private int _accepted;

    public RecordingTcpProxy(int listenPort, string targetEndpoint)
    {
        var uri = new Uri(targetEndpoint);
        _target = new IPEndPoint(IPAddress.Parse(uri.Host), uri.Port);
        _listener = new TcpListener(IPAddress.Loopback, listenPort);
        _listener.Start();
        Endpoint = $"tcp://127.0.0.1:{listenPort}";
        _accepting = AcceptAsync();
    }

    /// <summary>Where clients connect instead of the target.</summary>
    public string Endpoint { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>A copy of everything forwarded so far, both directions interleaved.</summary>
    public byte[] Recorded()
    {
        lock (_recorded) return _recorded.ToArray();
    }

    /// <summary>Whether the recorded bytes contain <paramref name="text"/> in UTF-8.</summary>
    public bool Saw(string text) => Recorded().AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(text)) >= 0;

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_connections)
            foreach (var connection in _connections) connection.Dispose();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        Task[] pumps;
        lock (_pumps) pumps = [.. _pumps];
        await Task.WhenAll(pumps.Select(p => p.ContinueWith(_ => { }, TaskScheduler.Default)));
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            Interlocked.Increment(ref _accepted);
            var server = new TcpClient();
            lock (_connections)
            {
                _connections.Add(client);
                _connections.Add(server);
            }
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (SocketException)
            {
                client.Dispose();
                continue;
            }
            lock (_pumps)
            {
                _pumps.Add(PumpAsync(client.GetStream(), server.GetStream(), client, server));
                _pumps.Add(PumpAsync(server.GetStream(), client.GetStream(), server, client));
            }
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, TcpClient fromClient, TcpClient toClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, _stop.Token);
                if (read == 0) break;
                lock (_recorded)
                    if (_recorded.Length + read <= MaxRecordedBytes) _recorded.Write(buffer, 0, read);
                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // One side closed: close the other too, as a direct connection would.
        }
        fromClient.Dispose();
        toClient.Dispose();
    }
}
