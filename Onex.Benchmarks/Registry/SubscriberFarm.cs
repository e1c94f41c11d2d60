using NetMQ;
using NetMQ.Sockets;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// Many raw SUB sockets on one PUB endpoint, all served by one poller thread, counting every message received.
/// A caller announces how many messages it expects (<see cref="Expect"/>), causes them, and waits until all have
/// arrived (<see cref="Wait"/>). Messages are received whole but not decoded: what is measured is delivery.
/// </summary>
internal sealed class SubscriberFarm : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly SubscriberSocket[] _sockets;
    private readonly long[] _perSocket;
    private readonly NetMQPoller _poller;
    private readonly ManualResetEventSlim _reached = new();
    private long _received;
    private long _target = long.MaxValue;

    public SubscriberFarm(string endpoint, int count, string prefix)
    {
        _sockets = new SubscriberSocket[count];
        _perSocket = new long[count];
        _poller = new NetMQPoller();
        for (var i = 0; i < count; i++)
        {
            var socket = new SubscriberSocket();
            socket.Options.Linger = TimeSpan.Zero;
            socket.Connect(endpoint);
            socket.Subscribe(prefix);
            var index = i;
            var message = new NetMQMessage();
            socket.ReceiveReady += (_, _) => Drain(socket, index, message);
            _sockets[i] = socket;
            _poller.Add(socket);
        }
        _poller.RunAsync("bench-subscribers", isBackgroundThread: true);
    }

    /// <summary>True when every socket has received at least one message (its subscription is live).</summary>
    public bool AllLive
    {
        get
        {
            for (var i = 0; i < _perSocket.Length; i++)
                if (Volatile.Read(ref _perSocket[i]) == 0) return false;
            return true;
        }
    }

    /// <summary>Arms the wait for <paramref name="messages"/> more messages. Call before causing them.</summary>
    public void Expect(int messages)
    {
        _reached.Reset();
        Volatile.Write(ref _target, Interlocked.Read(ref _received) + messages);
    }

    /// <summary>Waits until the expected messages have arrived; throws, saying how many are missing, after 10 s.</summary>
    public void Wait()
    {
        if (!_reached.Wait(Timeout))
            throw new TimeoutException($"{Volatile.Read(ref _target) - Interlocked.Read(ref _received)} message(s) did not arrive within {Timeout.TotalSeconds} s.");
    }

    private void Drain(SubscriberSocket socket, int index, NetMQMessage message)
    {
        // The message is reused: NetMQ fills the one passed in and only replaces it when given null.
        while (socket.TryReceiveMultipartMessage(TimeSpan.Zero, ref message!))
        {
            Volatile.Write(ref _perSocket[index], _perSocket[index] + 1);
            if (Interlocked.Increment(ref _received) >= Volatile.Read(ref _target)) _reached.Set();
            message.Clear();
        }
    }

    public void Dispose()
    {
        _poller.Stop();
        _poller.Dispose();
        foreach (var socket in _sockets) socket.Dispose();
        _reached.Dispose();
    }
}
