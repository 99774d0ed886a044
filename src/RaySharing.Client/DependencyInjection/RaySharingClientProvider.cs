using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RaySharing.DependencyInjection;

/// <summary>
/// The one <see cref="RaySharingClient"/> of a service container, registered by
/// <c>services.AddRaySharingClient(...)</c>. A client connects asynchronously, which a constructor cannot do, so
/// it is resolved through this: <c>await provider.GetClientAsync()</c>. The first call connects; concurrent
/// callers share that connect; a failed connect is not remembered, so a later call tries again. The client
/// outlives worker restarts by itself (<see cref="RaySharingClient.SessionReplaced"/>). Disposing the container
/// disposes the client and ends its session.
/// </summary>
public sealed class RaySharingClientProvider : IAsyncDisposable
{
    private readonly RaySharingClientOptions _options;
    private readonly CancellationTokenSource _disposing = new();
    private readonly Lock _lock = new();
    private Task<RaySharingClient>? _connecting;
    private int _disposed;

    /// <summary>Creates the provider; the container does this.</summary>
    /// <param name="options">The validated options.</param>
    /// <param name="loggerFactory">The container's logging, used when the options name none.</param>
    public RaySharingClientProvider(IOptions<RaySharingClientOptions> options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Clone();
        _options.LoggerFactory ??= loggerFactory;
    }

    /// <summary>Returns the container's client, connecting it on first use.</summary>
    /// <param name="cancellationToken">Stops this caller's wait; a connect other callers share goes on.</param>
    /// <exception cref="WorkerUnavailableException">No worker answers at the address.</exception>
    /// <exception cref="RaySharingTimeoutException">The worker did not answer within <see cref="RaySharingClientOptions.CallTimeout"/>.</exception>
    /// <exception cref="ObjectDisposedException">The container was disposed.</exception>
    public Task<RaySharingClient> GetClientAsync(CancellationToken cancellationToken = default)
    {
        Task<RaySharingClient> connecting;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (_connecting is null || _connecting.IsFaulted || _connecting.IsCanceled)
            {
                _connecting = RaySharingClient.ConnectAsync(_options, _disposing.Token);
            }

            connecting = _connecting;
        }

        return connecting.IsCompletedSuccessfully ? connecting : connecting.WaitAsync(cancellationToken);
    }

    /// <summary>Disposes the client, if one was connected, ending its session. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        Task<RaySharingClient>? connecting;
        lock (_lock)
        {
            if (_disposed != 0)
            {
                return;
            }

            _disposed = 1;
            connecting = _connecting;
        }

        await _disposing.CancelAsync().ConfigureAwait(false);
        try
        {
            if (connecting is not null)
            {
                await (await connecting.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or OperationCanceledException)
        {
            // The connect failed or was cancelled by this disposal: there is no session to end.
        }
        finally
        {
            _disposing.Dispose();
        }
    }
}
