using System.Runtime.CompilerServices;

namespace RaySharing.Testing;

/// <summary>
/// Every await of the tests and the chaos harness goes through here, so a hang fails fast instead of
/// stalling CI, and the failure names the awaited expression and the file and line that awaited it.
/// </summary>
public static class Bounded
{
    /// <summary>The bound when none is given: far above any call's own deadline, so only a hang reaches it.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

    /// <summary>Awaits <paramref name="task"/> for at most <paramref name="timeout"/> (default <see cref="Default"/>).</summary>
    /// <exception cref="BoundExceededException">It did not finish in time.</exception>
    public static async Task<T> Within<T>(
        this Task<T> task,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default,
        [CallerArgumentExpression(nameof(task))] string what = "",
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0)
    {
        await ((Task)task).Within(timeout, cancellationToken, what, file, line).ConfigureAwait(false);
        return await task.ConfigureAwait(false);
    }

    /// <inheritdoc cref="Within{T}(Task{T}, TimeSpan?, CancellationToken, string, string, int)"/>
    public static async Task Within(
        this Task task,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default,
        [CallerArgumentExpression(nameof(task))] string what = "",
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(task);
        var bound = timeout ?? Default;
        try
        {
            await task.WaitAsync(bound, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex) when (!task.IsCompleted)
        {
            // WaitAsync gave up; a TimeoutException of the task's own (a typed call timeout) passes through.
            throw new BoundExceededException(what, bound, file, line, ex);
        }
    }

    /// <inheritdoc cref="Within{T}(Task{T}, TimeSpan?, CancellationToken, string, string, int)"/>
    public static Task Within(
        this ValueTask task,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default,
        [CallerArgumentExpression(nameof(task))] string what = "",
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0) =>
        task.AsTask().Within(timeout, cancellationToken, what, file, line);

    /// <inheritdoc cref="Within{T}(Task{T}, TimeSpan?, CancellationToken, string, string, int)"/>
    public static Task<T> Within<T>(
        this ValueTask<T> task,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default,
        [CallerArgumentExpression(nameof(task))] string what = "",
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0) =>
        task.AsTask().Within(timeout, cancellationToken, what, file, line);

    /// <summary>
    /// Wraps <paramref name="disposable"/> so that <c>await using</c> on the wrapper is bounded like any other
    /// await: <c>await using var _ = client.DisposedWithin();</c>.
    /// </summary>
    public static IAsyncDisposable DisposedWithin(
        this IAsyncDisposable disposable,
        TimeSpan? timeout = null,
        [CallerArgumentExpression(nameof(disposable))] string what = "",
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0) =>
        new BoundedDisposal(disposable, timeout, what, file, line);

    /// <summary>
    /// Polls <paramref name="condition"/> (each poll bounded too) until it holds, failing after
    /// <paramref name="timeout"/>: for effects that have no signal of their own.
    /// </summary>
    /// <exception cref="BoundExceededException">The condition did not hold in time.</exception>
    public static async Task Eventually(
        Func<Task<bool>> condition,
        TimeSpan timeout,
        string what,
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition().Within(what: what, file: file, line: line).ConfigureAwait(false))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new BoundExceededException(what, timeout, file, line, inner: null);
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Polls <paramref name="poll"/> (each poll bounded too) until it gives a value, and returns it; fails after
    /// <paramref name="timeout"/>.
    /// </summary>
    /// <exception cref="BoundExceededException">No value came in time.</exception>
    public static async Task<T> EventuallyValue<T>(
        Func<Task<T?>> poll,
        TimeSpan timeout,
        string what,
        [CallerFilePath] string file = "",
        [CallerLineNumber] int line = 0)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(poll);
        T? value = null;
        await Eventually(async () => (value = await poll().ConfigureAwait(false)) is not null, timeout, what, file, line).ConfigureAwait(false);
        return value!;
    }
}

/// <summary>Disposes within a bound; see <see cref="Bounded.DisposedWithin"/>.</summary>
internal sealed class BoundedDisposal(IAsyncDisposable disposable, TimeSpan? timeout, string what, string file, int line) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => new(disposable.DisposeAsync().Within(timeout, default, $"{what}.DisposeAsync()", file, line));
}

/// <summary>
/// An await that neither finished nor failed within its bound: a hang. Deliberately not a
/// <see cref="TimeoutException"/>, so a test expecting a typed timeout never mistakes a hang for one.
/// </summary>
public sealed class BoundExceededException(string what, TimeSpan bound, string file, int line, Exception? inner)
    : Exception($"Not done within {bound.TotalSeconds:0.###} s: {what} (awaited at {file}:{line})", inner)
{
    /// <summary>The awaited expression or operation.</summary>
    public string What { get; } = what;

    /// <summary>The file and line that awaited it.</summary>
    public string Location { get; } = $"{file}:{line}";
}
