using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace RaySharing.Chaos.Roles;

/// <summary>
/// Writes the client's warnings and errors (late lease renewals, a session the worker ended) to stderr,
/// stamped with the milliseconds since this process started, so the harness can tell why a child
/// that was never killed lost its session. Hand-rolled to keep child start-up cheap.
/// </summary>
internal sealed class StderrLoggerFactory : ILoggerFactory, ILogger
{
    private static readonly Stopwatch SinceStart = Stopwatch.StartNew();

    public static StderrLoggerFactory Instance { get; } = new();

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }

        var cause = exception is null ? string.Empty : $" ({exception.GetType().Name}: {exception.Message.ReplaceLineEndings(" ")})";
        Console.Error.WriteLine($"[{SinceStart.ElapsedMilliseconds} ms] {logLevel}: {formatter(state, exception)}{cause}");
    }

    public void Dispose()
    {
    }
}
