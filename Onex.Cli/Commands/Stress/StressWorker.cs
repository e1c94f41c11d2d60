using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Onex.Cli.Commands;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands.Stress;

/// <summary>What a worker does each round, for either approach.</summary>
internal static class StressWorker
{
    public static async Task RunRegistryAsync(RegistryClient client, StressWorkerSettings settings, TextWriter output, CancellationToken cancellationToken)
    {
        var time = TimeProvider.System;
        for (var round = 1; round <= settings.Rounds; round++)
        {
            var sets = new List<PortLeaseSet>();
            try
            {
                for (var remaining = settings.Ports; remaining > 0; remaining -= Math.Min(remaining, StressCommand.MaxPortsPerRequest))
                {
                    sets.Add(await client.LeasePortsAsync(Math.Min(remaining, StressCommand.MaxPortsPerRequest), new LeaseRequestOptions
                    {
                        Purpose = $"onex ports stress: worker {settings.Worker} round {round}",
                        RenewAutomatically = false, // held for milliseconds, well within the TTL
                    }, cancellationToken).ConfigureAwait(false));
                }
                var heldFrom = time.GetTimestamp();
                var ports = sets.SelectMany(s => s.Ports).ToList();
                var (failures, heldUntil) = await BindAndHoldAsync(ports, settings.HoldMs, time, cancellationToken).ConfigureAwait(false);
                await WriteAsync(output, new StressWorkerLine("held", settings.Worker, round, ports)
                {
                    BindFailures = failures, HeldFrom = heldFrom, HeldUntil = heldUntil,
                }, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                foreach (var set in sets) await set.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    public static async Task RunAdHocAsync(StressWorkerSettings settings, TextReader input, TextWriter output, CancellationToken cancellationToken)
    {
        var time = TimeProvider.System;
        for (var round = 1; round <= settings.Rounds; round++)
        {
            var picked = new List<int>(settings.Ports);
            for (var i = 0; i < settings.Ports; i++) picked.Add(PickFreePort());
            await WriteAsync(output, new StressWorkerLine("picked", settings.Worker, round, picked), cancellationToken).ConfigureAwait(false);

            var handed = await input.ReadLineAsync(cancellationToken).ConfigureAwait(false)
                         ?? throw new InvalidOperationException($"stdin closed before round {round}'s ports arrived");
            var heldFrom = time.GetTimestamp();
            var assigned = JsonSerializer.Deserialize<StressWorkerLine>(handed, CliJson.Compact)
                           ?? throw new InvalidOperationException("an empty hand-over line");
            var (failures, heldUntil) = await BindAndHoldAsync(assigned.Ports, settings.HoldMs, time, cancellationToken).ConfigureAwait(false);
            await WriteAsync(output, new StressWorkerLine("held", settings.Worker, round, assigned.Ports)
            {
                BindFailures = failures, HeldFrom = heldFrom, HeldUntil = heldUntil,
            }, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The ad-hoc pick: let the kernel choose a free port, note it, close the socket.</summary>
    private static int PickFreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>Binds every port for TCP (listening) and UDP on 127.0.0.1, holds them, closes them; returns the failures and when holding ended.</summary>
    private static async Task<(IReadOnlyList<StressBindFailure> Failures, long HeldUntil)> BindAndHoldAsync(
        IReadOnlyList<int> ports, int holdMs, TimeProvider time, CancellationToken cancellationToken)
    {
        var sockets = new List<Socket>(ports.Count * 2);
        var failures = new List<StressBindFailure>();
        try
        {
            foreach (var port in ports)
            {
                if (TryBind(port, SocketType.Stream, ProtocolType.Tcp, sockets) is { } tcp) failures.Add(tcp);
                if (TryBind(port, SocketType.Dgram, ProtocolType.Udp, sockets) is { } udp) failures.Add(udp);
            }
            // The hold is the workload itself (how long a test keeps its ports), not a wait for something.
            await Task.Delay(TimeSpan.FromMilliseconds(holdMs), time, cancellationToken).ConfigureAwait(false);
            return (failures, time.GetTimestamp());
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }

    private static StressBindFailure? TryBind(int port, SocketType type, ProtocolType protocol, List<Socket> sockets)
    {
        var socket = new Socket(AddressFamily.InterNetwork, type, protocol);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            if (type == SocketType.Stream) socket.Listen();
            sockets.Add(socket);
            return null;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            return new StressBindFailure(port, protocol == ProtocolType.Tcp ? "tcp" : "udp", ex.SocketErrorCode.ToString());
        }
    }

    private static async Task WriteAsync(TextWriter output, StressWorkerLine line, CancellationToken cancellationToken)
    {
        await output.WriteLineAsync(CliJson.Serialize(line, indented: false)).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
