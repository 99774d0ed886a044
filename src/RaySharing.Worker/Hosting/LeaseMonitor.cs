using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Hosting;

/// <summary>
/// Ends sessions whose lease lapsed, every <see cref="WorkerOptions.LeaseCheckInterval"/> on the worker's
/// clock, the same <see cref="TimeProvider"/> the leases are measured on.
/// </summary>
internal sealed class LeaseMonitor(OwnershipGraph graph, WorkerOptions options, TimeProvider time, ILogger<LeaseMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.LeaseCheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    var ended = graph.ExpireLapsedSessions();
                    if (ended > 0)
                    {
                        WorkerLog.LeasesLapsed(logger, ended);
                    }
                }
                catch (Exception ex)
                {
                    // A bug here must not stop lease enforcement for good; log and keep ticking.
                    WorkerLog.LeaseMonitorFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
