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

/// <summary>What the parent asked for.</summary>
internal sealed record StressSettings(int Processes, int Ports, int Rounds, int HoldMs, TimeSpan TimeLimit);

/// <summary>What one worker was asked for.</summary>
internal sealed record StressWorkerSettings(int Worker, int Ports, int Rounds, int HoldMs);

/// <summary>A port a worker could not bind: the protocol (tcp or udp) and the socket error.</summary>
internal sealed record StressBindFailure(int Port, string Protocol, string Error);

/// <summary>
/// One line a worker writes. <c>picked</c> (ad-hoc only): ports it picked for another worker. <c>held</c>: ports it
/// held in a round, from <see cref="HeldFrom"/> (granted or handed over) to <see cref="HeldUntil"/> (before release),
/// in <see cref="TimeProvider.GetTimestamp"/> units, which on Linux come from one monotonic clock shared by all processes.
/// </summary>
internal sealed record StressWorkerLine(string Kind, int Worker, int Round, IReadOnlyList<int> Ports)
{
    public IReadOnlyList<StressBindFailure> BindFailures { get; init; } = [];
    public long HeldFrom { get; init; }
    public long HeldUntil { get; init; }
}

/// <summary>The outcome of one approach.</summary>
internal sealed record StressApproachReport(
    string Approach, int Grants, int BindFailures, int DoubleGrants, double ElapsedSeconds, bool Completed,
    IReadOnlyList<StressBindFailure> FailedBinds, IReadOnlyList<int> DoubleGrantedPorts, string? Problem);

/// <summary>The whole run (what <c>--json</c> prints).</summary>
internal sealed record StressReport(
    int Processes, int Ports, int Rounds, int HoldMs, string Registry, IReadOnlyList<StressApproachReport> Approaches, bool Passed);
