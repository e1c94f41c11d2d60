using System.Text.Json;
using Onex.Cli;
using Onex.Cli.Bench;
using Onex.Tests.Client;

namespace Onex.Tests.Cli;

/// <summary>
/// <c>onex bench bus</c>, run in-process with small counts: it measures bus and raw transport in one run and prints
/// both with their ratios. The figures themselves are not asserted (they depend on the machine's load).
/// </summary>
public class BenchCommandTests
{
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(60);

    private static async Task<(int ExitCode, string Output, string Error)> BenchAsync(params string[] args)
    {
        var output = new CapturedOutput();
        var error = new StringWriter();
        // A run past the limit is stopped, not left measuring (and loading the machine) while the other tests run.
        using var limit = new CancellationTokenSource(RunLimit);
        var code = await OnexCli.RunAsync(["bench", "bus", .. args], output, error, TextReader.Null, cancellationToken: limit.Token)
            .Within($"onex bench bus {string.Join(' ', args)}", RunLimit);
        return (code, output.ToString(), error.ToString());
    }

    private static void AssertBusAndRawFigures(JsonElement report, string backend, string what)
    {
        Assert.That(report.GetProperty("backend").GetString(), Is.EqualTo(backend), what);
        var throughput = report.GetProperty("throughput");
        var roundTrip = report.GetProperty("roundTrip");
        Assert.Multiple(() =>
        {
            Assert.That(throughput.GetProperty("bus").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0), $"{what}: bus throughput");
            Assert.That(throughput.GetProperty("raw").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0), $"{what}: raw throughput");
            Assert.That(throughput.GetProperty("ratio").GetDouble(), Is.GreaterThan(0), $"{what}: throughput ratio");
            Assert.That(roundTrip.GetProperty("bus").GetProperty("medianMicroseconds").GetDouble(), Is.GreaterThan(0), $"{what}: bus round trip");
            Assert.That(roundTrip.GetProperty("raw").GetProperty("medianMicroseconds").GetDouble(), Is.GreaterThan(0), $"{what}: raw round trip");
            Assert.That(roundTrip.GetProperty("ratio").GetDouble(), Is.GreaterThan(0), $"{what}: round-trip ratio");
        });
    }

    [Test]
    public async Task Bench_bus_memory_json_has_bus_and_raw_figures_and_their_ratios()
    {
        var (exitCode, output, error) = await BenchAsync("--backend", "memory", "--count", "2000", "--json");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error);
        using var json = JsonDocument.Parse(output);
        AssertBusAndRawFigures(json.RootElement, "memory", "memory bench");
        Assert.That(json.RootElement.GetProperty("throughput").GetProperty("bus").GetProperty("lost").GetInt64(), Is.Zero,
            "the in-memory bus in Wait mode delivers every event to the subscriber");
    }

    [Test]
    public async Task Bench_bus_zmq_json_has_bus_and_raw_figures_and_their_ratios()
    {
        // Few ping-pongs: each one waits for several threads to be scheduled, about 10 ms on a loaded 2-core machine,
        // and with 200 (warm-up passes included) the run took over a minute there. The report's shape needs only a few.
        var (exitCode, output, error) = await BenchAsync("--backend", "zmq", "--count", "2000", "--round-trips", "20", "--rounds", "2", "--json");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error);
        using var json = JsonDocument.Parse(output);
        AssertBusAndRawFigures(json.RootElement, "zmq", "zmq bench");
        var joined = json.RootElement.GetProperty("throughputComparisons").EnumerateArray().Single();
        Assert.Multiple(() =>
        {
            Assert.That(joined.GetProperty("name").GetString(), Is.EqualTo("joined->joined"), "the two-hop path is measured beside the host's");
            Assert.That(joined.GetProperty("figures").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(joined.GetProperty("rawRatio").GetDouble(), Is.GreaterThan(0));
            Assert.That(joined.GetProperty("figures").GetProperty("lost").GetInt64(), Is.Zero, "unlimited high-water marks lose nothing");
        });
    }

    [Test]
    public async Task Bench_bus_ipc_reports_what_each_event_cost_and_counts_every_lost_event()
    {
        var (exitCode, output, error) = await BenchAsync("--backend", "ipc", "--count", "2000", "--round-trips", "20", "--rounds", "2", "--json");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error);
        using var json = JsonDocument.Parse(output);
        AssertBusAndRawFigures(json.RootElement, "ipc", "ipc bench");
        var bus = json.RootElement.GetProperty("throughput").GetProperty("bus");
        var raw = json.RootElement.GetProperty("throughput").GetProperty("raw");
        Assert.Multiple(() =>
        {
            // A lost event is either counted by a drop counter of the bus (and so reported to its participants) or silent.
            Assert.That(bus.GetProperty("unaccounted").GetInt64(), Is.Zero, "no event is lost without a drop counter saying so");
            Assert.That(bus.GetProperty("countedDrops").GetInt64(), Is.LessThanOrEqualTo(bus.GetProperty("lost").GetInt64()),
                "drops counted during a run are events that did not arrive");
            Assert.That(bus.GetProperty("cpuMicrosecondsPerEvent").GetDouble(), Is.GreaterThan(0), "the bus's CPU time per event");
            Assert.That(raw.GetProperty("cpuMicrosecondsPerEvent").GetDouble(), Is.GreaterThan(0), "the raw transport's CPU time per event");
            Assert.That(bus.GetProperty("allocatedBytesPerEvent").GetDouble(), Is.GreaterThan(0), "the bus allocates an OnexEvent per event at least");
        });
    }

    [Test]
    public void A_report_separates_the_drops_a_bus_counted_from_silent_loss()
    {
        // 10 published, 6 read, 3 counted as dropped by the bus: 1 lost silently.
        var sample = new ThroughputSample(10, 6, 1000) { CountedDrops = 3 };
        var figures = BusBenchStatistics.Throughput([sample, new ThroughputSample(10, 10, 1000)], payloadBytes: 64);

        Assert.Multiple(() =>
        {
            Assert.That(sample.Lost, Is.EqualTo(4));
            Assert.That(sample.Unaccounted, Is.EqualTo(1));
            Assert.That(figures.Lost, Is.EqualTo(4));
            Assert.That(figures.CountedDrops, Is.EqualTo(3));
            Assert.That(figures.Unaccounted, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Bench_bus_slow_consumer_case_keeps_the_stalled_queue_within_its_limits_and_loses_nothing_for_the_fast_ones()
    {
        var (exitCode, output, error) = await BenchAsync("--backend", "memory", "--count", "3000", "--round-trips", "50", "--rounds", "2", "--json");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error);
        using var json = JsonDocument.Parse(output);
        var slow = json.RootElement.GetProperty("slowConsumer");
        Assert.Multiple(() =>
        {
            Assert.That(slow.GetProperty("stalledCapacity").GetInt32(), Is.EqualTo(1024), "the stalled subscription has the default limits");
            Assert.That(slow.GetProperty("peakPendingEvents").GetInt64(), Is.InRange(1, 1024), "the stalled queue filled up to its event limit, not past it");
            Assert.That(slow.GetProperty("withinLimits").GetBoolean(), Is.True, slow.ToString());
            // 3,000 events into a queue of 1,024 that nobody reads, in DropNewest mode: 1,976 drops per stalled run, 2 runs.
            Assert.That(slow.GetProperty("stalledDropped").GetInt64(), Is.EqualTo(2 * (3000 - 1024)), "every event past the limit is counted as dropped");
            Assert.That(slow.GetProperty("stalled").GetProperty("lost").GetInt64(), Is.Zero, "the fast subscriptions get every event beside the stalled one");
            Assert.That(slow.GetProperty("stalled").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(slow.GetProperty("unstalled").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(slow.GetProperty("reading").GetProperty("eventsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(slow.GetProperty("reading").GetProperty("lost").GetInt64(), Is.Zero, "the fast subscriptions get every event beside a reading third");
            Assert.That(slow.GetProperty("ratio").GetDouble(), Is.GreaterThan(0));
            Assert.That(slow.GetProperty("ratioToReading").GetDouble(), Is.GreaterThan(0));
        });
    }

    [Test]
    public async Task Bench_bus_prints_a_table_with_the_ratios()
    {
        var (exitCode, output, error) = await BenchAsync("--backend", "memory", "--count", "1000", "--round-trips", "100", "--rounds", "1");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Ok), error);
        Assert.That(output, Does.Contain("bus/raw").And.Contain("throughput (events/s)").And.Contain("round trip median (µs)")
            .And.Contain("stalled/reading").And.Contain("stalled/alone"));
        Assert.That(error, Does.Contain("round 1/1"), "progress goes to stderr");
    }

    [Test]
    public async Task Bench_bus_with_an_unknown_backend_is_a_usage_error()
    {
        var (exitCode, _, error) = await BenchAsync("--backend", "kafka");

        Assert.That(exitCode, Is.EqualTo(ExitCodes.Usage));
        Assert.That(error, Does.Contain("kafka").And.Contain("jetstream"));
    }
}
