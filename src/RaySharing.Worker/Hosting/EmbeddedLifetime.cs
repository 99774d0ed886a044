using Microsoft.Extensions.Hosting;

namespace RaySharing.Worker.Hosting;

/// <summary>
/// A host lifetime that leaves the process's signals alone. An embedded worker is a library inside
/// someone else's process: it must not swallow SIGTERM or Ctrl+C, as the default console lifetime does.
/// The embedding process decides when to dispose the worker.
/// </summary>
internal sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
