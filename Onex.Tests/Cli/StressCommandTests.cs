using System.Text.Json;
using Onex.Cli;
using Onex.Cli.Commands.Stress;
using Onex.Cli.Commands;
using Onex.Cli.Output;
using Onex.Testing.Registry;
using Onex.Tests.Client;

namespace Onex.Tests.Cli;

/// <summary><c>onex ports stress</c>: a small real run (worker processes against the test registry) and the counting.</summary>
public class StressCommandTests
{
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(90);

    private static StressWorkerLine Hold(int worker, long from, long until, params int[] ports) =>
        new("held", worker, 1, ports) { HeldFrom = from, HeldUntil = until };

    [Test]
    public async Task A_small_run_has_no_bind_failure_or_double_grant_with_the_registry_and_reports_both_approaches()
    {
        var registry = await OnexTestEnvironment.RegistryAsync();
        var output = new StringWriter();
        var error = new StringWriter();

        var exitCode = await OnexCli.RunAsync(
            ["--registry", registry.Endpoint, "--registry-pub", registry.PubEndpoint,
             "ports", "stress", "--processes", "3", "--ports", "5", "--rounds", "2", "--hold", "20ms", "--json"],
            output, error, TextReader.Null).WaitAsync(RunLimit);

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), $"stdout: {output}\nstderr: {error}");
        var report = JsonSerializer.Deserialize<StressReport>(output.ToString(), CliJson.Compact)!;
        Assert.That(report.Approaches.Select(a => a.Approach), Is.EqualTo(new[] { StressCommand.Registry, StressCommand.AdHoc }));
        var leased = report.Approaches[0];
        Assert.That((leased.Completed, leased.Grants, leased.BindFailures, leased.DoubleGrants), Is.EqualTo((true, 30, 0, 0)),
            $"registry approach: {JsonSerializer.Serialize(leased)}");
        var adHoc = report.Approaches[1];
        Assert.That((adHoc.Completed, adHoc.Grants), Is.EqualTo((true, 30)), $"ad-hoc approach: {adHoc.Problem}");
        Assert.That(report.Passed, Is.True);
    }

    [Test]
    public async Task A_run_past_its_time_limit_kills_its_workers_and_fails()
    {
        await using var registry = await TestRegistry.StartAsync(); // its endpoint tells this run's workers from any other
        var output = new StringWriter();

        var exitCode = await OnexCli.RunAsync(
            [.. Onex.At(registry), "ports", "stress", "--processes", "2", "--ports", "1", "--rounds", "1", "--hold", "60s", "--time-limit", "1s", "--json"],
            output, new StringWriter(), TextReader.Null).WaitAsync(RunLimit);

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Failed));
        var report = JsonSerializer.Deserialize<StressReport>(output.ToString(), CliJson.Compact)!;
        Assert.That(report.Approaches.Select(a => a.Completed), Is.All.False);
        Assert.That(report.Approaches[0].Problem, Does.Contain("time limit"));
        Assert.That(WorkersOf(registry.Host.RouterEndpoint), Is.Empty, "workers outlived the run");
    }

    /// <summary>Ids of processes whose command line names <paramref name="endpoint"/>.</summary>
    private static List<int> WorkersOf(string endpoint)
    {
        var found = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid) || pid == Environment.ProcessId) continue;
            try
            {
                if (File.ReadAllText(Path.Combine(directory, "cmdline")).Contains(endpoint, StringComparison.Ordinal)) found.Add(pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // the process ended while we looked, or is not ours to read
            }
        }
        return found;
    }

    [Test]
    public void Two_workers_holding_one_port_at_the_same_time_is_a_double_grant()
    {
        var doubles = StressAnalysis.DoubleGrants([Hold(0, 100, 200, 21000), Hold(1, 150, 250, 21000)]);

        Assert.That(doubles.Select(d => (d.Port, d.First.Worker, d.Second.Worker)), Is.EqualTo(new[] { (21000, 0, 1) }));
    }

    [Test]
    public void A_port_held_again_after_its_release_is_not_a_double_grant()
    {
        var doubles = StressAnalysis.DoubleGrants([Hold(0, 100, 200, 21000), Hold(1, 200, 300, 21000), Hold(2, 350, 400, 21000)]);

        Assert.That(doubles, Is.Empty);
    }

    [Test]
    public void A_port_handed_out_twice_in_one_round_is_a_double_grant()
    {
        var doubles = StressAnalysis.DoubleGrants([Hold(0, 100, 200, 21000, 21001, 21000)]);

        Assert.That(doubles.Select(d => d.Port), Is.EqualTo(new[] { 21000 }));
    }

    [Test]
    public void A_port_failing_for_tcp_and_udp_counts_as_one_bind_failure()
    {
        var hold = Hold(0, 100, 200, 21000, 21001) with
        {
            BindFailures = [new StressBindFailure(21000, "tcp", "AddressAlreadyInUse"), new StressBindFailure(21000, "udp", "AddressAlreadyInUse")],
        };

        var report = StressAnalysis.Summarize(StressCommand.AdHoc, [hold], TimeSpan.FromSeconds(1), problem: null);

        Assert.That((report.Grants, report.BindFailures, report.FailedBinds.Count), Is.EqualTo((2, 1, 2)));
    }

    [Test]
    public async Task One_process_is_refused_because_the_ad_hoc_approach_hands_ports_to_another()
    {
        var output = new StringWriter();
        var error = new StringWriter();

        var exitCode = await OnexCli.RunAsync(["ports", "stress", "--processes", "1", "--ports", "5"], output, error, TextReader.Null);

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Usage));
        Assert.That(error.ToString(), Does.Contain("--processes must be from 2 to 64"));
    }
}
