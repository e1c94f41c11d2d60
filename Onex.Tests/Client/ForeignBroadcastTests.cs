using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>A client whose broadcast endpoint belongs to another registry must not re-assert on every heartbeat.</summary>
public class ForeignBroadcastTests
{
    [Test]
    public async Task Heartbeats_of_another_registry_are_recognised_and_trigger_no_reassertion()
    {
        await using var home = await TestRegistry.StartAsync();
        await using var other = await TestRegistry.StartAsync();
        var warned = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var loggers = LoggerFactory.Create(builder => builder.AddProvider(new WarningSink(warned)));
        var options = home.ClientOptions() with { PubEndpoint = other.Host.PubEndpoint, LoggerFactory = loggers };
        await using var client = await RegistryClient.ConnectAsync(options);
        var reassertions = 0;
        client.Reasserted += (_, _) => Interlocked.Increment(ref reassertions);
        await using var leases = await client.LeasePortAsync();
        var lease = leases.Leases[0];

        var warning = await warned.Task.Within("the warning that the broadcasts come from another registry");

        Assert.That(warning, Does.Contain(other.Host.Epoch).And.Contain(home.Host.Epoch));
        Assert.That(Volatile.Read(ref reassertions), Is.Zero, "a foreign epoch on PUB must not re-assert against the home registry");
        var state = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases] });
        Assert.That(state.Leases!.Select(l => l.LeaseId), Is.EqualTo(new[] { lease.LeaseId }), "the lease was re-requested");
    }

    private sealed class WarningSink(TaskCompletionSource<string> warned) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var message = formatter(state, exception);
            if (message.Contains("belong to different registries")) warned.TrySetResult(message);
        }

        public void Dispose() { }
    }
}
