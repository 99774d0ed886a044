using System.Runtime.InteropServices;

namespace RaySharing.Worker.Host;

/// <summary>
/// SIGTERM and SIGINT, any number of them, become one request to stop gracefully. The handlers stay
/// registered until the process exits, so a second signal during the graceful stop (coreutils
/// <c>timeout</c> sends two) is absorbed too instead of killing the process; they only complete a task,
/// which nothing ever disposes.
/// </summary>
internal static class ShutdownSignal
{
    private static readonly TaskCompletionSource Requested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private static readonly Lock Gate = new();

    // Held in a static field for the life of the process: a collected registration stops handling its signal.
    private static PosixSignalRegistration[]? s_registrations;

    /// <summary>Starts listening (once) and returns a task that completes at the first SIGTERM or SIGINT.</summary>
    public static Task Listen()
    {
        lock (Gate)
        {
            s_registrations ??=
            [
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            ];
        }

        return Requested.Task;
    }

    private static void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        Requested.TrySetResult();
    }
}
