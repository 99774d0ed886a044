using System.Runtime.CompilerServices;
using RaySharing.Testing;

namespace RaySharing.Chaos.Infrastructure;

/// <summary>
/// Every call of the harness goes through here, so a call that never returns shows up as a counted
/// hang, named with the file and line that made it, instead of stalling the run.
/// </summary>
internal static class BoundedCall
{
    /// <summary>Extra time a cooperative call gets to report its own cancellation before it is abandoned.</summary>
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Runs <paramref name="call"/> with a token that cancels after <paramref name="bound"/>. A call that
    /// honours the token fails with <see cref="OperationCanceledException"/>; one that ignores it is
    /// abandoned a little later. Both become <see cref="BoundExceededException"/>.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> (the round's watchdog) fired.</exception>
    public static async Task<T> RunAsync<T>(
        string what,
        TimeSpan bound,
        Func<CancellationToken, Task<T>> call,
        CancellationToken cancellationToken,
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        try
        {
            return await call(timeout.Token).Within(bound + Grace, cancellationToken, what, file, line).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BoundExceededException(what, bound, file, line, ex);
        }
    }

    public static Task RunAsync(
        string what,
        TimeSpan bound,
        Func<CancellationToken, Task> call,
        CancellationToken cancellationToken,
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0) =>
        RunAsync(what, bound, async token =>
        {
            await call(token).ConfigureAwait(false);
            return true;
        }, cancellationToken, file, line);
}
