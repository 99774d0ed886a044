namespace RaySharing.Chaos.Infrastructure;

/// <summary>
/// Every await of the harness goes through here, so a call that never returns shows up as a counted
/// hang instead of stalling the run.
/// </summary>
internal static class Bounded
{
    /// <summary>Extra time a cooperative call gets to report its own cancellation before it is abandoned.</summary>
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Runs <paramref name="call"/> with a token that cancels after <paramref name="bound"/>. A call that
    /// honours the token fails with <see cref="OperationCanceledException"/>; one that ignores it is
    /// abandoned a little later. Both become <see cref="BoundExceededException"/>.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> (the round's watchdog) fired.</exception>
    public static async Task<T> RunAsync<T>(string what, TimeSpan bound, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        try
        {
            return await call(timeout.Token).WaitAsync(bound + Grace, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BoundExceededException(what, bound, ex);
        }
        catch (TimeoutException ex) when (ex is not RaySharingTimeoutException)
        {
            // WaitAsync gave up: the call ignored its token.
            throw new BoundExceededException(what, bound, ex);
        }
    }

    public static Task RunAsync(string what, TimeSpan bound, Func<CancellationToken, Task> call, CancellationToken cancellationToken) =>
        RunAsync(what, bound, async token =>
        {
            await call(token).ConfigureAwait(false);
            return true;
        }, cancellationToken);
}

/// <summary>A call neither returned nor failed within the harness's own bound: a hang.</summary>
internal sealed class BoundExceededException(string what, TimeSpan bound, Exception inner)
    : Exception($"{what} did not finish within {bound.TotalSeconds:0.#} s", inner);
