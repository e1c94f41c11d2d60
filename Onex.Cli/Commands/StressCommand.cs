using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands;

/// <summary>
/// <c>onex ports stress</c>: P worker processes each lease K ports R times through the registry and bind every one
/// (TCP listen and UDP on 127.0.0.1); then the same load the common ad-hoc way (bind port 0, read the number, close,
/// hand it to another process, which binds it). Prints bind failures and double grants of both approaches.
/// <c>onex ports stress-worker</c> (hidden) is one worker.
/// </summary>
internal static class StressCommand
{
    /// <summary>The registry approach, as named in the report.</summary>
    public const string Registry = "registry";

    /// <summary>The bind-port-0-and-hand-over approach, as named in the report.</summary>
    public const string AdHoc = "ad-hoc";

    /// <summary>Most ports one lease request may ask for (PROTOCOL.md section 12); larger rounds take several requests.</summary>
    public const int MaxPortsPerRequest = 64;

    /// <summary>Adds <c>stress</c> and the hidden <c>stress-worker</c> to the <c>ports</c> command.</summary>
    public static Command AddTo(Command ports, CliContext context)
    {
        ports.Add(BuildStress(context));
        ports.Add(BuildWorker(context));
        return ports;
    }

    private static Option<int> Bounded(string name, string description, string helpName, int min, int max, int? defaultValue = null) =>
        CliValues.Number(name, helpName, $"{description} ({min}-{max}).", min, max, defaultValue);

    private static Command BuildStress(CliContext context)
    {
        var processes = Bounded("--processes", "Worker processes", "P", 2, 64);
        var ports = Bounded("--ports", "Ports each worker takes per round", "K", 1, 1000);
        var rounds = Bounded("--rounds", "Rounds per worker", "R", 1, 100, defaultValue: 5);
        var hold = Bounded("--hold", "Milliseconds each worker holds its bound ports per round", "MS", 0, 60_000, defaultValue: 100);
        var limit = Bounded("--time-limit", "Seconds the whole run may take before the workers are killed", "S", 1, 3600, defaultValue: 120);
        var json = DescribeCommand.JsonOption("the report");
        var command = new Command("stress",
            "Stress-test port allocation: P processes lease K ports R times through the registry and bind them (TCP and UDP), " +
            "then the same load picking ports the ad-hoc way (bind port 0, close, hand to another process). Exit 0 when the " +
            "registry approach had no bind failure and no double grant. Without --registry or $ONEX_REGISTRY_ENDPOINT it uses " +
            "a registry on the default endpoint, or starts one in this process for the run.")
        {
            processes, ports, rounds, hold, limit, json,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var settings = new StressSettings(
                parse.GetValue(processes), parse.GetValue(ports), parse.GetValue(rounds), parse.GetValue(hold), TimeSpan.FromSeconds(parse.GetValue(limit)));
            await using var target = await RegistryTarget.ResolveAsync(context, parse, cancellationToken).ConfigureAwait(false);
            if (!parse.GetValue(json))
                await context.Error.WriteLineAsync(
                    $"onex: {settings.Processes} processes x {settings.Ports} ports x {settings.Rounds} rounds, registry {target.Description}").ConfigureAwait(false);

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(settings.TimeLimit);
            var registry = await StressRun.RunAsync(Registry, settings, target, deadline.Token).ConfigureAwait(false);
            var adHoc = await StressRun.RunAsync(AdHoc, settings, target, deadline.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();

            var report = new StressReport(settings.Processes, settings.Ports, settings.Rounds, settings.HoldMs, target.Description, [registry, adHoc],
                Passed: registry.Completed && registry.BindFailures == 0 && registry.DoubleGrants == 0);
            if (parse.GetValue(json))
                await context.Output.WriteLineAsync(CliJson.Serialize(report)).ConfigureAwait(false);
            else
                WriteTable(report, context.Output);
            return report.Passed ? ExitCodes.Ok : ExitCodes.Failed;
        }));
        return command;
    }

    private static void WriteTable(StressReport report, TextWriter output)
    {
        var table = new TextTable("approach", "grants", "bind failures", "double grants", "elapsed");
        foreach (var approach in report.Approaches)
            table.Add(approach.Approach, approach.Grants, approach.BindFailures, approach.DoubleGrants, $"{approach.ElapsedSeconds:0.00} s");
        table.WriteTo(output);
        foreach (var approach in report.Approaches)
        {
            if (approach.Problem is { } problem) output.WriteLine($"{approach.Approach}: incomplete: {problem}");
            if (approach.FailedBinds.Count > 0)
                output.WriteLine($"{approach.Approach}: bind failures: {string.Join(", ", approach.FailedBinds.Take(10).Select(f => $"{f.Port}/{f.Protocol} {f.Error}"))}" +
                                 (approach.FailedBinds.Count > 10 ? $" (+{approach.FailedBinds.Count - 10} more)" : ""));
            if (approach.DoubleGrantedPorts.Count > 0)
                output.WriteLine($"{approach.Approach}: double grants on ports: {string.Join(", ", approach.DoubleGrantedPorts.Take(10))}" +
                                 (approach.DoubleGrantedPorts.Count > 10 ? $" (+{approach.DoubleGrantedPorts.Count - 10} more)" : ""));
        }
        output.WriteLine(report.Passed
            ? "registry approach: no bind failure, no double grant"
            : "registry approach: FAILED (see above)");
    }

    private static Command BuildWorker(CliContext context)
    {
        var approach = new Option<string>("--approach") { Required = true, HelpName = "APPROACH" };
        approach.AcceptOnlyFromAmong(Registry, AdHoc);
        var worker = CliValues.Number("--worker", "N", "The worker's number.", 0);
        var ports = Bounded("--ports", "Ports per round", "K", 1, 1000);
        var rounds = Bounded("--rounds", "Rounds", "R", 1, 100);
        var hold = Bounded("--hold", "Hold in milliseconds", "MS", 0, 60_000);
        var command = new Command("stress-worker", "One worker of `onex ports stress` (JSON lines on stdout).")
        {
            Hidden = true,
        };
        command.Options.Add(approach);
        command.Options.Add(worker);
        command.Options.Add(ports);
        command.Options.Add(rounds);
        command.Options.Add(hold);
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var settings = new StressWorkerSettings(parse.GetValue(worker), parse.GetValue(ports), parse.GetValue(rounds), parse.GetValue(hold));
            if (parse.GetValue(approach) == Registry)
            {
                await using var client = await context.ConnectAsync(parse, cancellationToken, announce: true, nodeName: $"onex ports stress-worker {settings.Worker}")
                    .ConfigureAwait(false);
                await StressWorker.RunRegistryAsync(client, settings, context.Output, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await StressWorker.RunAdHocAsync(settings, context.Input, context.Output, cancellationToken).ConfigureAwait(false);
            }
            return ExitCodes.Ok;
        }));
        return command;
    }
}

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

/// <summary>Which registry the workers lease from; an in-process one is stopped on dispose.</summary>
internal sealed class RegistryTarget : IAsyncDisposable
{
    private readonly RegistryNodeHost? _host;

    private RegistryTarget(string router, string pub, RegistryNodeHost? host)
    {
        Router = router;
        Pub = pub;
        _host = host;
    }

    public string Router { get; }
    public string Pub { get; }
    public string Description => _host is null ? Router : $"in-process {Router}";

    /// <summary>
    /// A registry named by <c>--registry</c> or <c>$ONEX_REGISTRY_ENDPOINT</c> must answer (else UNAVAILABLE, exit 3);
    /// with neither, the default endpoint is tried and, when nothing answers there, a registry is started in this process.
    /// </summary>
    public static async Task<RegistryTarget> ResolveAsync(CliContext context, ParseResult parse, CancellationToken cancellationToken)
    {
        var named = parse.GetValue(CliContext.RegistryOption) is { Length: > 0 }
                    || Environment.GetEnvironmentVariable(RegistryEndpoints.RouterVariable) is { Length: > 0 };
        var options = context.ClientOptions(parse, announce: false, nodeName: "onex ports stress");
        if (!named) options = options with { MaxAttempts = 1, RequestTimeout = TimeSpan.FromMilliseconds(500) };
        await using (var probe = await RegistryClient.ConnectAsync(options, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await probe.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }, cancellationToken).ConfigureAwait(false);
                return new RegistryTarget(probe.Endpoint, probe.PubEndpoint, null);
            }
            catch (UnavailableException) when (!named)
            {
                // nothing on the default endpoint: run our own below
            }
        }
        var host = await RegistryNodeHost.StartAsync(
            RegistryNodeOptions.Default with
            {
                Endpoint = "tcp://127.0.0.1:0", PubEndpoint = "tcp://127.0.0.1:0", NodeId = "onex-ports-stress",
                Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
            },
            ct: cancellationToken).ConfigureAwait(false);
        return new RegistryTarget(host.RouterEndpoint, host.PubEndpoint, host);
    }

    public ValueTask DisposeAsync() => _host?.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>One approach: start the workers, route ad-hoc hand-overs, collect their lines, then count.</summary>
internal static class StressRun
{
    public static async Task<StressApproachReport> RunAsync(string approach, StressSettings settings, RegistryTarget target, CancellationToken deadline)
    {
        var time = TimeProvider.System;
        var started = time.GetTimestamp();
        var holds = new ConcurrentQueue<StressWorkerLine>();
        var workers = new List<WorkerProcess>();
        string? problem = null;
        try
        {
            deadline.ThrowIfCancellationRequested();
            for (var i = 0; i < settings.Processes; i++)
                workers.Add(WorkerProcess.Start(approach, i, settings, target));
            var readers = workers.Select(worker => ReadAsync(worker, workers, holds, deadline)).ToArray();
            await Task.WhenAll(readers).ConfigureAwait(false);
            foreach (var worker in workers)
            {
                var exitCode = await worker.WaitForExitAsync(deadline).ConfigureAwait(false);
                if (exitCode != 0 && problem is null)
                    problem = $"worker {worker.Index} exited with {exitCode}: {worker.Errors.Trim()}";
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            problem = $"stopped after {time.GetElapsedTime(started).TotalSeconds:0} s (time limit or interrupt); workers killed";
        }
        catch (Exception ex) when (ex is JsonException or IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            problem = $"{ex.GetType().Name}: {ex.Message}";
        }
        finally
        {
            foreach (var worker in workers) await worker.DisposeAsync().ConfigureAwait(false);
        }
        var elapsed = time.GetElapsedTime(started);
        var rounds = holds.ToList();
        var expected = settings.Processes * settings.Rounds;
        if (problem is null && rounds.Count != expected) problem = $"{rounds.Count} of {expected} worker rounds reported";
        return StressAnalysis.Summarize(approach, rounds, elapsed, problem);
    }

    private static async Task ReadAsync(WorkerProcess worker, List<WorkerProcess> workers, ConcurrentQueue<StressWorkerLine> holds, CancellationToken deadline)
    {
        while (await worker.ReadLineAsync(deadline).ConfigureAwait(false) is { } text)
        {
            var line = JsonSerializer.Deserialize<StressWorkerLine>(text, CliJson.Compact)
                       ?? throw new InvalidOperationException($"worker {worker.Index} wrote an empty line");
            if (line.Kind == "picked")
            {
                // The ad-hoc hand-over: ports one process picked are bound by the next one.
                var next = workers[(worker.Index + 1) % workers.Count];
                await next.SendAsync(CliJson.Serialize(line, indented: false), deadline).ConfigureAwait(false);
            }
            else
            {
                holds.Enqueue(line);
            }
        }
    }
}

/// <summary>Counting from worker lines; separate from process handling so it can be tested on its own.</summary>
internal static class StressAnalysis
{
    public static StressApproachReport Summarize(string approach, IReadOnlyList<StressWorkerLine> holds, TimeSpan elapsed, string? problem)
    {
        var failed = holds.SelectMany(h => h.BindFailures).ToList();
        var doubles = DoubleGrants(holds);
        return new StressApproachReport(
            approach,
            Grants: holds.Sum(h => h.Ports.Count),
            BindFailures: holds.Sum(h => h.BindFailures.Select(f => f.Port).Distinct().Count()), // a port failing tcp and udp counts once
            DoubleGrants: doubles.Count,
            ElapsedSeconds: Math.Round(elapsed.TotalSeconds, 2),
            Completed: problem is null,
            FailedBinds: failed,
            DoubleGrantedPorts: doubles.Select(d => d.Port).Distinct().Order().ToList(),
            Problem: problem);
    }

    /// <summary>
    /// Pairs of holds of one port whose intervals overlap: two holders at the same time (a port listed twice in one
    /// hold counts too). Holds that touch end to start do not overlap.
    /// </summary>
    public static IReadOnlyList<(int Port, StressWorkerLine First, StressWorkerLine Second)> DoubleGrants(IReadOnlyList<StressWorkerLine> holds)
    {
        var found = new List<(int, StressWorkerLine, StressWorkerLine)>();
        foreach (var port in holds.SelectMany(h => h.Ports.Select(p => (Port: p, Hold: h))).GroupBy(x => x.Port))
        {
            var ordered = port.Select(x => x.Hold).OrderBy(h => h.HeldFrom).ToList();
            for (var i = 0; i < ordered.Count; i++)
            {
                // Sorted by start: once one starts after this one ended, all later ones do too.
                for (var j = i + 1; j < ordered.Count && ordered[j].HeldFrom < ordered[i].HeldUntil; j++)
                    found.Add((port.Key, ordered[i], ordered[j]));
            }
        }
        return found;
    }
}

/// <summary>A worker: <c>onex ports stress-worker ...</c> as a child process, its stdin and stdout as line streams.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _errors = new();
    private readonly SemaphoreSlim _stdin = new(1, 1);

    private WorkerProcess(int index, Process process)
    {
        Index = index;
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_errors) if (_errors.Length < 4096) _errors.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
    }

    public int Index { get; }

    public string Errors
    {
        get { lock (_errors) return _errors.ToString(); }
    }

    public static WorkerProcess Start(string approach, int index, StressSettings settings, RegistryTarget target)
    {
        var start = OnexStartInfo();
        foreach (var arg in new[]
                 {
                     "ports", "stress-worker", "--approach", approach, "--worker", index.ToString(), "--ports", settings.Ports.ToString(),
                     "--rounds", settings.Rounds.ToString(), "--hold", settings.HoldMs.ToString(),
                     "--registry", target.Router, "--registry-pub", target.Pub,
                 })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        return new WorkerProcess(index, process);
    }

    /// <summary>
    /// This same <c>onex</c>: the apphost when that is what runs, else <c>dotnet onex.dll</c> with the running dotnet
    /// (or <c>DOTNET_HOST_PATH</c>, as test hosts set it), so it works as an installed tool and in-process under a test.
    /// </summary>
    private static ProcessStartInfo OnexStartInfo()
    {
        var processPath = Environment.ProcessPath;
        var name = processPath is null ? "" : Path.GetFileNameWithoutExtension(processPath);
        ProcessStartInfo start;
        if (name == "onex")
        {
            start = new ProcessStartInfo(processPath!);
        }
        else
        {
            var dotnet = name == "dotnet" ? processPath!
                : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
            start = new ProcessStartInfo(dotnet);
            start.ArgumentList.Add(typeof(StressCommand).Assembly.Location);
        }
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        return start;
    }

    public async Task<string?> ReadLineAsync(CancellationToken cancellationToken) =>
        await _process.StandardOutput.ReadLineAsync(cancellationToken).ConfigureAwait(false);

    public async Task SendAsync(string line, CancellationToken cancellationToken)
    {
        await _stdin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _process.StandardInput.WriteLineAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
            await _process.StandardInput.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _stdin.Release();
        }
    }

    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>Kills the worker if it still runs (time limit, Ctrl-C, a failed run) and waits for it.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // exited between the check and the kill
        }
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
        _stdin.Dispose();
    }
}

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
