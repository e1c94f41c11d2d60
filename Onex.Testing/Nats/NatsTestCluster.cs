using System.Collections.Concurrent;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Net;
using NUnit.Framework;
using Onex.Errors;
using Onex.Testing.Registry;
using Onex.Testing.Resources;
using Onex.Transports.Registry;

namespace Onex.Testing.Nats;

/// <summary>
/// Three (or more) real <c>nats-server</c> processes clustered with routes, JetStream on each (Raft-replicated streams
/// and key-value buckets need at least three for R3): loopback only, two leased ports per server (client and route),
/// a store directory per server. <see cref="StartAsync"/> returns once JetStream's cluster has a leader. Each server
/// can be killed (by pid) and started again on its ports and store. Disposing kills them all, deletes the directories
/// and releases the ports; the kit disposes it after the test that started it if nobody did before.
/// </summary>
public sealed class NatsTestCluster : IAsyncDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private static readonly ConcurrentDictionary<NatsTestCluster, byte> Running = new();

    private readonly string _executable;
    private readonly string _root;
    private readonly PortLeaseSet _lease;
    private readonly NatsServerProcess?[] _processes;
    private int _disposed;

    static NatsTestCluster()
    {
        // A crashed or aborted test run must not leave servers behind.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var cluster in Running.Keys) cluster.KillAllNow();
        };
    }

    private NatsTestCluster(string executable, PortLeaseSet lease, int size)
    {
        _executable = executable;
        _lease = lease;
        _root = Directory.CreateTempSubdirectory("onex-nats-cluster-").FullName;
        _processes = new NatsServerProcess?[size];
        ClientPorts = Enumerable.Range(0, size).Select(i => lease.Ports[2 * i]).ToArray();
        RoutePorts = Enumerable.Range(0, size).Select(i => lease.Ports[2 * i + 1]).ToArray();
        var routes = string.Join(", ", RoutePorts.Select(p => $"\"nats-route://127.0.0.1:{p}\""));
        for (var i = 0; i < size; i++)
        {
            Directory.CreateDirectory(StoreDirectory(i));
            File.WriteAllText(ConfigFile(i), $$"""
                server_name: "onex-n{{i}}"
                max_payload: {{NatsTestServer.DefaultMaxPayloadBytes}}
                cluster {
                  name: "onex-test"
                  no_advertise: true
                  listen: "127.0.0.1:{{RoutePorts[i]}}"
                  routes: [ {{routes}} ]
                }
                """);
        }
    }

    /// <summary>The client port of each server on 127.0.0.1.</summary>
    public IReadOnlyList<int> ClientPorts { get; }

    /// <summary>The route (cluster) port of each server on 127.0.0.1.</summary>
    public IReadOnlyList<int> RoutePorts { get; }

    /// <summary>How many servers the cluster has.</summary>
    public int Size => _processes.Length;

    /// <summary>The URL of server <paramref name="index"/>.</summary>
    public string UrlOf(int index) => $"nats://127.0.0.1:{ClientPorts[index]}";

    /// <summary>Every server's URL, comma-separated (what NATS clients and <c>--cluster</c> take).</summary>
    public string Urls => string.Join(",", Enumerable.Range(0, Size).Select(UrlOf));

    /// <summary>True while server <paramref name="index"/> runs.</summary>
    public bool IsRunning(int index) => _processes[index] is { IsRunning: true };

    /// <summary>
    /// Starts <paramref name="size"/> clustered servers on leased ports and returns once JetStream answers through
    /// every one of them (the cluster elected its meta leader). Disposed after the running test unless disposed earlier.
    /// </summary>
    /// <exception cref="NotFoundException">nats-server is not installed (the message says how to install it).</exception>
    /// <exception cref="UnavailableException">A server did not start, or JetStream did not become ready (the message says which).</exception>
    public static async Task<NatsTestCluster> StartAsync(int size = 3, CancellationToken cancellationToken = default)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), "A cluster has at least one server.");
        var (scope, purpose) = TestResources.Current();
        var executable = NatsServerProcess.FindExecutable("or set ONEX_NATS_URL to a running server");
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        var lease = await registry.LeasePortsAsync(2 * size,
            new LeaseRequestOptions { Purpose = $"nats cluster for {purpose}", Protocol = Onex.Protocol.PortProtocols.Tcp }, cancellationToken).ConfigureAwait(false);
        var cluster = new NatsTestCluster(executable, lease, size);
        try
        {
            Running.TryAdd(cluster, 0);
            await Task.WhenAll(Enumerable.Range(0, size).Select(i => cluster.StartServerAsync(i, cancellationToken))).ConfigureAwait(false);
            for (var i = 0; i < size; i++) await cluster.WaitForJetStreamAsync(i, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return await TestResources.AddAsync(scope, cluster).ConfigureAwait(false);
    }

    /// <summary>Kills server <paramref name="index"/> (SIGKILL, by pid) and waits for it to exit; its ports and store are kept.</summary>
    public async Task KillAsync(int index)
    {
        if (_processes[index] is { } process) await process.KillAsync().ConfigureAwait(false);
    }

    /// <summary>Stops server <paramref name="index"/> gracefully (SIGTERM) and waits for it to exit.</summary>
    public async Task StopAsync(int index)
    {
        if (_processes[index] is { } process) await process.StopAsync(StopTimeout).ConfigureAwait(false);
    }

    /// <summary>Starts server <paramref name="index"/> again (same ports and store) and waits until JetStream answers through it.</summary>
    public async Task StartAgainAsync(int index, CancellationToken cancellationToken = default)
    {
        await StartServerAsync(index, cancellationToken).ConfigureAwait(false);
        await WaitForJetStreamAsync(index, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Kills every server, deletes their directories and releases the ports.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var process in _processes)
            if (process is not null) await process.DisposeAsync().ConfigureAwait(false);
        Running.TryRemove(this, out _);
        await _lease.DisposeAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException ex)
        {
            TestContext.Progress.WriteLine($"onex-testing: could not delete the nats cluster directory {_root}: {ex.Message}");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"nats cluster {Urls}";

    private string StoreDirectory(int index) => Path.Combine(_root, $"n{index}", "store");

    private string ConfigFile(int index) => Path.Combine(_root, $"n{index}", "nats.conf");

    private async Task StartServerAsync(int index, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_processes[index] is { } previous) await previous.DisposeAsync().ConfigureAwait(false);
        _processes[index] = await NatsServerProcess.StartAsync(_executable, ClientPorts[index], StoreDirectory(index), ConfigFile(index), cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>JetStream in a cluster answers only once the meta group has a leader: asks until it does, within a bound.</summary>
    private async Task WaitForJetStreamAsync(int index, CancellationToken cancellationToken)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = UrlOf(index), Name = "onex-testing cluster probe" });
        var js = connection.CreateJetStreamContext();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(ReadyTimeout);
        Exception? last = null;
        while (true)
        {
            try
            {
                await js.GetAccountInfoAsync(limit.Token).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw NotReady(index, last);
            }
            catch (NatsException ex)
            {
                last = ex;
            }
            try
            {
                // The meta leader election takes a few route round trips; ask again shortly.
                await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw NotReady(index, last);
            }
        }
    }

    private UnavailableException NotReady(int index, Exception? last) => new(
        $"JetStream did not become ready through {UrlOf(index)} within {ReadyTimeout.TotalSeconds:0} s (last answer: {last?.Message ?? "none"}).",
        new Dictionary<string, string> { ["port"] = ClientPorts[index].ToString() });

    private void KillAllNow()
    {
        foreach (var process in _processes) process?.KillNow();
    }
}
