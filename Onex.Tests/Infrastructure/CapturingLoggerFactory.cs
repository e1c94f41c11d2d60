using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Onex.Tests.Infrastructure;

/// <summary>One captured log entry.</summary>
public sealed record CapturedLog(LogLevel Level, EventId EventId, string Message);

/// <summary>An <see cref="ILoggerFactory"/> that keeps every entry, so tests can check what was logged.</summary>
public sealed class CapturingLoggerFactory : ILoggerFactory
{
    private readonly ConcurrentQueue<CapturedLog> _entries = new();

    public IReadOnlyList<CapturedLog> Entries => _entries.ToArray();

    public ILogger CreateLogger(string categoryName) => new Logger(_entries);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException("Capturing only.");

    public void Dispose()
    {
    }

    private sealed class Logger(ConcurrentQueue<CapturedLog> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue(new CapturedLog(logLevel, eventId, formatter(state, exception)));
    }
}
