using Microsoft.Extensions.Logging;
using Onex.Tests.Infrastructure;
using Onex.Transports.JetStream;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>An existing stream is used as it is; a participant whose options want other limits says so.</summary>
public sealed class JetStreamStreamLimitsTests : JetStreamServerTests
{
    private const int StreamLimitsDifferEventId = 4006;

    [Test]
    public async Task Joining_with_the_same_limits_logs_no_warning()
    {
        var options = Options(Server, UniqueBusName());
        await using var first = await JetStreamEventBus.ConnectAsync(options);
        using var logs = new CapturingLoggerFactory();

        await using var second = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false, LoggerFactory = logs });

        Assert.That(logs.Entries.Where(e => e.EventId.Id == StreamLimitsDifferEventId), Is.Empty,
            string.Join(Environment.NewLine, logs.Entries.Select(e => e.Message)));
    }

    [Test]
    public async Task Joining_with_other_limits_keeps_the_stream_and_warns_naming_each_difference()
    {
        var options = Options(Server, UniqueBusName());
        await using var first = await JetStreamEventBus.ConnectAsync(options);
        using var logs = new CapturingLoggerFactory();

        await using var second = await JetStreamEventBus.ConnectAsync(options with
        {
            DeleteStreamOnDispose = false,
            LoggerFactory = logs,
            MaxAge = options.MaxAge * 2,
            MaxBytes = options.MaxBytes / 2,
        });

        var stream = await Js.GetStreamAsync(second.StreamName);
        var warning = logs.Entries.SingleOrDefault(e => e.EventId.Id == StreamLimitsDifferEventId);
        Assert.Multiple(() =>
        {
            Assert.That(stream.Info.Config.MaxAge, Is.EqualTo(options.MaxAge), "the first declarer's limits stay");
            Assert.That(stream.Info.Config.MaxBytes, Is.EqualTo(options.MaxBytes));
            Assert.That(warning?.Level, Is.EqualTo(LogLevel.Warning), "no warning about the differing limits");
            Assert.That(warning?.Message, Does.Contain("max_age").And.Contain("max_bytes").And.Not.Contain("max_msg_size"));
        });
    }
}
