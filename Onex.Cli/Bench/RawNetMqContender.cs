using System.Diagnostics;
using System.Text;
using NetMQ;
using NetMQ.Sockets;

namespace Onex.Cli.Bench;

/// <summary>
/// The ZeroMQ baseline: NetMQ used directly over tcp loopback, each socket driven by a blocking loop on its own
/// thread (NetMQ's natural use). Throughput: a PUB bound on <c>tcp://127.0.0.1:0</c> sends <c>[topic][payload]</c>
/// to a SUB filtering on the topic (the bus's frame layout without the envelope), with the bus's high-water marks
/// (<see cref="BusBenchOptions.ZmqHighWatermark"/>).
/// Round trip: a DEALER sends the payload to a ROUTER, which echoes it back.
/// </summary>
internal sealed class RawNetMqContender : IBenchContender
{
    private const string DataTopic = "bench.data";
    private const string ProbeTopic = "bench.probe";
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    // How often the blocking loops look at their cancellation token while nothing arrives.
    private static readonly TimeSpan CancellationCheck = TimeSpan.FromMilliseconds(100);

    private readonly byte[] _payload;
    private readonly byte[] _dataTopic = Encoding.ASCII.GetBytes(DataTopic);
    private readonly TimeSpan _quietPeriod;
    private readonly PublisherSocket _pub;
    private readonly SubscriberSocket _sub;
    private readonly RouterSocket _router;
    private readonly DealerSocket _dealer;

    private RawNetMqContender(byte[] payload, int highWatermark, TimeSpan quietPeriod)
    {
        _payload = payload;
        _quietPeriod = quietPeriod;
        _pub = Configure(new PublisherSocket(), highWatermark);
        _sub = Configure(new SubscriberSocket(), highWatermark);
        _router = Configure(new RouterSocket(), highWatermark);
        _dealer = Configure(new DealerSocket(), highWatermark);
    }

    public string Description => "raw NetMQ PUB->SUB / DEALER<->ROUTER (tcp loopback)";

    /// <summary>Binds and connects both pairs and waits until the SUB's filter is in place at the PUB.</summary>
    public static async Task<RawNetMqContender> CreateAsync(byte[] payload, int highWatermark, TimeSpan quietPeriod, CancellationToken cancellationToken)
    {
        var contender = new RawNetMqContender(payload, highWatermark, quietPeriod);
        try
        {
            var pubPort = contender._pub.BindRandomPort("tcp://127.0.0.1");
            contender._sub.Connect($"tcp://127.0.0.1:{pubPort}");
            var routerPort = contender._router.BindRandomPort("tcp://127.0.0.1");
            contender._dealer.Connect($"tcp://127.0.0.1:{routerPort}");
            await RunOnThreadAsync(() => contender.ConfirmSubscription(cancellationToken)).ConfigureAwait(false);
            return contender;
        }
        catch
        {
            await contender.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<ThroughputSample> MeasureThroughputAsync(int count, CancellationToken cancellationToken)
    {
        var progress = new ReadProgress();
        var reader = RunOnThreadAsync(() => Receive(count, progress, cancellationToken));
        var started = Stopwatch.GetTimestamp();
        await RunOnThreadAsync(() => Send(count)).ConfigureAwait(false);
        await reader.ConfigureAwait(false);
        return progress.ToSample(count, started);
    }

    public async Task<long[]> MeasureRoundTripsAsync(int count, CancellationToken cancellationToken)
    {
        using var responder = BenchResponder.Start(stop => RunOnThreadAsync(() => Echo(stop)), cancellationToken, out var pingerToken);
        try
        {
            return await RunOnThreadAsync(() => Ping(count, pingerToken)).ConfigureAwait(false);
        }
        finally
        {
            await responder.StopAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync()
    {
        _pub.Dispose();
        _sub.Dispose();
        _router.Dispose();
        _dealer.Dispose();
        return default;
    }

    private static T Configure<T>(T socket, int highWatermark) where T : NetMQSocket
    {
        // The same high-water marks as the bus's sockets, so both drop (or not) under the same conditions.
        socket.Options.SendHighWatermark = highWatermark;
        socket.Options.ReceiveHighWatermark = highWatermark;
        socket.Options.Linger = TimeSpan.Zero;
        return socket;
    }

    private static Task RunOnThreadAsync(Action action) =>
        Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static Task<T> RunOnThreadAsync<T>(Func<T> action) =>
        Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// PUB drops messages for a SUB whose filter has not arrived yet. The data filter is set first, then a probe
    /// filter; filters of one socket arrive in order, so once a probe comes back the data filter is in place too.
    /// </summary>
    private void ConfirmSubscription(CancellationToken cancellationToken)
    {
        _sub.Subscribe(DataTopic);
        _sub.Subscribe(ProbeTopic);
        var deadline = Stopwatch.GetTimestamp() + (long)(HandshakeTimeout.TotalSeconds * Stopwatch.Frequency);
        var msg = new Msg();
        msg.InitEmpty();
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (Stopwatch.GetTimestamp() > deadline)
                    throw new TimeoutException($"The raw NetMQ SUB did not receive a probe within {HandshakeTimeout.TotalSeconds:0} s.");
                _pub.SendMoreFrame(ProbeTopic).SendFrameEmpty();
                if (!_sub.TryReceive(ref msg, TimeSpan.FromMilliseconds(10))) continue;
                while (msg.HasMore) _sub.TryReceive(ref msg, SendReceiveConstants.InfiniteTimeout);
                break;
            }
        }
        finally
        {
            msg.Close();
        }
        _sub.Unsubscribe(ProbeTopic);
    }

    private void Send(int count)
    {
        var msg = new Msg();
        msg.InitEmpty();
        try
        {
            for (var i = 0; i < count; i++)
            {
                // InitGC hands the arrays over without copying; nothing writes to them.
                msg.InitGC(_dataTopic, _dataTopic.Length);
                _pub.TrySend(ref msg, TimeSpan.Zero, more: true);
                msg.InitGC(_payload, _payload.Length);
                _pub.TrySend(ref msg, TimeSpan.Zero, more: false);
            }
        }
        finally
        {
            msg.Close();
        }
    }

    private void Receive(int count, ReadProgress progress, CancellationToken cancellationToken)
    {
        var msg = new Msg();
        msg.InitEmpty();
        long received = 0;
        try
        {
            while (received < count)
            {
                if (!_sub.TryReceive(ref msg, TimeSpan.Zero))
                {
                    // Caught up: record the batch, then wait; nothing for a quiet period means the rest was dropped.
                    progress.Update(received, Stopwatch.GetTimestamp());
                    cancellationToken.ThrowIfCancellationRequested();
                    if (!_sub.TryReceive(ref msg, _quietPeriod)) return;
                }
                // A late probe from the handshake has a longer topic; it is not data.
                var isData = msg.Size == _dataTopic.Length;
                while (msg.HasMore) _sub.TryReceive(ref msg, SendReceiveConstants.InfiniteTimeout);
                if (isData) received++;
            }
            progress.Update(received, Stopwatch.GetTimestamp());
        }
        finally
        {
            msg.Close();
        }
    }

    private long[] Ping(int count, CancellationToken cancellationToken)
    {
        var samples = new long[count];
        var msg = new Msg();
        msg.InitEmpty();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var started = Stopwatch.GetTimestamp();
                msg.InitGC(_payload, _payload.Length);
                _dealer.TrySend(ref msg, SendReceiveConstants.InfiniteTimeout, more: false);
                while (!_dealer.TryReceive(ref msg, CancellationCheck)) cancellationToken.ThrowIfCancellationRequested();
                samples[i] = Stopwatch.GetTimestamp() - started;
            }
        }
        finally
        {
            msg.Close();
        }
        return samples;
    }

    private void Echo(CancellationToken stop)
    {
        var identity = new Msg();
        var body = new Msg();
        identity.InitEmpty();
        body.InitEmpty();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (!_router.TryReceive(ref identity, CancellationCheck)) continue;
                _router.TryReceive(ref body, SendReceiveConstants.InfiniteTimeout);
                // Sending hands both frames back as they are: no copy.
                _router.TrySend(ref identity, SendReceiveConstants.InfiniteTimeout, more: true);
                _router.TrySend(ref body, SendReceiveConstants.InfiniteTimeout, more: false);
            }
        }
        finally
        {
            identity.Close();
            body.Close();
        }
    }
}
