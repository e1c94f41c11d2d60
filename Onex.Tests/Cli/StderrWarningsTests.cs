using Microsoft.Extensions.Logging;
using Onex.Cli.Output;

namespace Onex.Tests.Cli;

/// <summary>The registry client's warnings as one <c>onex: warning:</c> line each on a holding command's stderr.</summary>
public class StderrWarningsTests
{
    [Test]
    public void Warnings_and_errors_become_one_line_each_and_nothing_less_severe_is_written()
    {
        var error = new StringWriter();
        ILoggerFactory warnings = new StderrWarnings(error);
        var logger = warnings.CreateLogger("Onex.Transports.Registry.PortLeaseSet");

        logger.LogInformation("Lease {LeaseId} renewed", "L-1");
        logger.LogDebug("resending");
        logger.LogWarning("Renewal of lease {LeaseId} on port {Port} failed, will retry: {Code}\nsecond line", "L-1", 20417, "UNAVAILABLE");
        logger.LogError(new InvalidOperationException("handler broke"), "A lease event handler threw for lease {LeaseId}", "L-2");

        Assert.That(error.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[]
        {
            "onex: warning: Renewal of lease L-1 on port 20417 failed, will retry: UNAVAILABLE second line",
            "onex: error: A lease event handler threw for lease L-2 (handler broke)",
        }));
    }
}
