using Microsoft.Extensions.Logging;

namespace RaySharing.Worker.Diagnostics;

/// <summary>
/// A logger that never throws. Microsoft.Extensions.Logging rethrows a provider's failure to the caller,
/// and the ownership graph logs between the steps of updates that must not stop halfway.
/// </summary>
internal sealed class GuardedLogger(ILogger inner) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => inner.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        try
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
        catch (Exception)
        {
            // Losing a log line is better than a half-updated graph.
        }
    }
}
