using Microsoft.Extensions.Logging;

namespace Onex.Cli.Output;

/// <summary>
/// The registry client's warnings (a renewal that failed and will be retried, an undecodable reply, ...) as
/// <c>onex: warning: ...</c> lines on the command's stderr, for commands that run for a while: the user sees trouble
/// building up before it costs a lease, not only when it has. Below Warning nothing is written.
/// </summary>
internal sealed class StderrWarnings(TextWriter error) : ILoggerFactory, ILogger
{
    private readonly Lock _gate = new();

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException("onex writes its warnings itself.");

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        // One line, no stack trace: the exception's message is what a user can act on.
        var line = $"onex: {(logLevel == LogLevel.Warning ? "warning" : "error")}: {formatter(state, exception)}" +
                   (exception is null ? "" : $" ({exception.Message})");
        lock (_gate) error.WriteLine(line.ReplaceLineEndings(" "));
    }

    public void Dispose()
    {
    }
}
