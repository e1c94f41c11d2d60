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
