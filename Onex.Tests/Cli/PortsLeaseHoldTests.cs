using System.Diagnostics;
using System.Text.Json;
using Onex.Cli;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary>
/// <c>onex ports lease</c> in scripts and in the background, as a real child process: held until a given process
/// exits, until a signal only (stdin at its end from the start), and released when the reader of a pipe goes away.
/// </summary>
public class PortsLeaseHoldTests
{
    private static readonly TimeSpan ChildProcessLimit = TimeSpan.FromSeconds(30);

    private static Process Start(string file, IEnumerable<string> args, bool closeInput)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        if (closeInput) process.StandardInput.Close();
        return process;
    }

    private static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    private static string OnexDll => Path.Combine(AppContext.BaseDirectory, "onex.dll");

    private static async Task<PortLease> ReadLeaseAsync(OnexProcess onex)
    {
        var line = await onex.ReadLineAsync("the lease on stdout", ChildProcessLimit);
        return JsonSerializer.Deserialize<List<PortLease>>(line, new JsonSerializerOptions(JsonSerializerDefaults.Web))!.Single();
    }

    private static async Task<IReadOnlyList<PortLease>> LeasesAsync(RegistryClient observer) =>
        (await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] })).Leases ?? [];

    private static void Stop(Process process)
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.Dispose();
    }

    [Test]
    public async Task Until_pid_holds_with_stdin_open_and_releases_when_that_process_exits()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        var watched = Start("sleep", ["600"], closeInput: true);
        await using var onex = OnexProcess.Start(Onex.At(registry, "ports", "lease", "--count", "1", "--json", "--until-pid", watched.Id.ToString()));
        try
        {
            var lease = await ReadLeaseAsync(onex);
            Assert.That((await LeasesAsync(observer)).Select(l => l.LeaseId), Does.Contain(lease.LeaseId), "held while the process runs");

            watched.Kill();
            var exitCode = await onex.WaitForExitAsync(ChildProcessLimit);

            Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), await onex.StandardErrorAsync());
            Assert.That(await LeasesAsync(observer), Is.Empty, "released when the watched process exited");
        }
        finally
        {
            Stop(watched);
        }
    }

    [Test]
    public async Task Until_signal_ignores_the_end_of_stdin_and_releases_on_sigterm()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        await using var changes = observer.WatchEvents(ChangeTypes.TopicPrefix);
        await changes.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the watch's initial snapshot");
        // stdin at its end from the start, as for `onex ports lease ... &` in a script (bash gives it /dev/null).
        await using var onex = OnexProcess.Start(Onex.At(registry, "ports", "lease", "--count", "1", "--json", "--until-signal"));
        onex.CloseInput();
        {
            var lease = await ReadLeaseAsync(onex);
            // Without --until-signal the end of stdin would release at once; the lease outlives renewals instead (the
            // registry's default TTL of 5 s: a shorter one is lost, as it should be, when the loaded machine delays a renewal).
            var renewals = 0;
            await onex.WhileRunningAsync(changes.UntilAsync(
                e => e.Kind == RegistryWatchEventKind.Change && e.Change!.ChangeType == ChangeTypes.LeaseRenewed &&
                     e.Change.NewValue?.Lease?.LeaseId == lease.LeaseId && ++renewals == 2,
                "two renewals of the held lease"), "two renewals of the held lease");
            Assert.That((await LeasesAsync(observer)).Select(l => l.LeaseId), Does.Contain(lease.LeaseId), "onex let go although only a signal should end it");

            using (var kill = Process.Start("kill", ["-TERM", onex.Id.ToString()])!)
                await kill.WaitForExitAsync().Within("kill to run", ChildProcessLimit);
            var exitCode = await onex.WaitForExitAsync(ChildProcessLimit);

            Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), await onex.StandardErrorAsync());
            Assert.That(await LeasesAsync(observer), Is.Empty, "released on SIGTERM");
        }
    }

    [Test]
    public async Task The_pipe_idiom_releases_when_the_reading_group_ends()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions() with { AnnounceNode = false });
        var command = string.Join(' ', new[] { Dotnet, OnexDll }.Concat(Onex.At(registry, "ports", "lease", "--count", "1", "--json")).Select(Quote));
        // docs/CLI.md's idiom; stdin stays open (a pipe from this test), so only the closed pipe can end the hold.
        var shell = Start("bash", ["-c", $"{command} | {{ read -r leases; echo \"$leases\"; }}"], closeInput: false);
        try
        {
            var line = await shell.StandardOutput.ReadLineAsync().Within("the leases echoed by the reading group", ChildProcessLimit);
            var lease = JsonSerializer.Deserialize<List<PortLease>>(line!, new JsonSerializerOptions(JsonSerializerDefaults.Web))!.Single();

            // bash waits for both sides of the pipe: it exits only once onex has let go.
            await shell.WaitForExitAsync().Within("the pipeline to end after its reader did", ChildProcessLimit);

            Assert.That(shell.ExitCode, Is.EqualTo(0), await shell.StandardError.ReadToEndAsync());
            Assert.That((await LeasesAsync(observer)).Select(l => l.LeaseId), Does.Not.Contain(lease.LeaseId), "released when the pipe closed");
        }
        finally
        {
            Stop(shell);
        }
    }

    private static string Quote(string word) => "'" + word.Replace("'", "'\\''") + "'";
}
