using Onex.Cli;
using Onex.Tests.Client;
using Onex.Transports.Registry;

namespace Onex.Tests.Cli;

/// <summary><c>onex top</c>, run in-process against an in-process registry node.</summary>
public class TopCommandTests
{
    [Test]
    public async Task Top_once_prints_one_frame_with_the_counters_the_request_rate_and_the_leased_port()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Purpose = "top-test" });

        var result = await Onex.RunAsync(Onex.At(registry, "top", "--once", "--interval", "200ms"));

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Ok), result.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(result.Output, Does.Contain($"registry {registry.Host.RouterEndpoint}, epoch {registry.Host.Epoch}"), "header");
            Assert.That(result.Output, Does.Match(@"requests \d+ \(\d+\.\d/s\)"), "requests served with a rate");
            Assert.That(result.Output, Does.Contain("leases 1 "), "lease counter");
            Assert.That(result.Output, Does.Contain("Leases (1)"), "lease table");
            Assert.That(result.Output, Does.Contain(leases.Ports[0].ToString()).And.Contain("top-test"), "the lease's port and purpose");
            Assert.That(result.Output, Does.Contain(client.NodeId), "the node holding it");
            Assert.That(result.Output, Does.Not.Contain("\u001b["), "--once writes no screen control");
            Assert.That(result.Output.Split("onex top:").Length - 1, Is.EqualTo(1), "exactly one frame");
        });
    }

    [Test]
    public async Task Top_quits_on_q_with_exit_code_zero_after_showing_a_frame()
    {
        await using var registry = await TestRegistry.StartAsync();
        var output = new CapturedOutput();
        var error = new StringWriter();

        var code = await OnexCli.RunAsync(Onex.At(registry, "top", "--interval", "10m"), output, error, new StringReader("q"))
            .Within("onex top to quit on q", Waits.Default);

        Assert.That(code, Is.EqualTo(ExitCodes.Ok), error.ToString());
        Assert.That(output.ToString(), Does.Contain("onex top: registry").And.Contain("(q or Ctrl-C quits)"), "a frame was shown before quitting");
    }

    [Test]
    public async Task Top_ends_quietly_when_cancelled_like_ctrl_c()
    {
        await using var registry = await TestRegistry.StartAsync();
        var output = new CapturedOutput();
        using var stop = new CancellationTokenSource();
        var run = OnexCli.RunAsync(Onex.At(registry, "top", "--interval", "100ms"), output, new StringWriter(), new ClosableInput(), cancellationToken: stop.Token);

        await output.NextLineAsync("the first frame");
        stop.Cancel();

        Assert.That(await run.Within("onex top to end after cancellation", Waits.Default), Is.EqualTo(ExitCodes.Ok));
    }
}
