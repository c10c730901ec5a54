using System.Globalization;
using Microsoft.Extensions.Logging;

/// <summary>
/// The SDK's log, one timestamped line per entry (UTC, milliseconds), appended to a file beside the expected writes:
/// what an instance did and when, to set against the coordinator's audit lines when a check fails.
/// </summary>
internal sealed class FileLoggerProvider(string path) : ILoggerProvider
{
    private readonly StreamWriter writer = new(path, append: true) { AutoFlush = true };

    public ILogger CreateLogger(string categoryName) => new FileLogger(this);

    public void Dispose()
    {
        lock (writer)
        {
            writer.Dispose();
        }
    }

    private void Write(LogLevel level, string message, Exception? exception)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"{DateTimeOffset.UtcNow:HH:mm:ss.ffffff} {level} {message}{(exception is null ? string.Empty : $" ({exception.GetType().Name}: {exception.Message})")}");
        lock (writer)
        {
            writer.WriteLine(line);
        }
    }

    private sealed class FileLogger(FileLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                provider.Write(logLevel, formatter(state, exception), exception);
            }
        }
    }
}
