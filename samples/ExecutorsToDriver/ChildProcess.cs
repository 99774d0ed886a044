using System.Diagnostics;
using System.Reflection;

namespace ExecutorsToDriver;

/// <summary>Runs more processes of this same program, within a bound.</summary>
internal static class ChildProcess
{
    /// <summary>Starts one child per argument list, waits for all of them and returns their exit codes, in order.</summary>
    /// <exception cref="TimeoutException">Some child ran longer than <paramref name="timeout"/>; it was killed.</exception>
    public static async Task<int[]> RunAllAsync(IEnumerable<string[]> argumentLists, TimeSpan timeout)
    {
        var processes = new List<Process>();
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            processes.AddRange(argumentLists.Select(StartSelf));
            try
            {
                await Task.WhenAll(processes.Select(p => p.WaitForExitAsync(deadline.Token)));
            }
            catch (OperationCanceledException)
            {
                var running = processes.Count(p => !p.HasExited);
                throw new TimeoutException($"{running} of {processes.Count} child processes did not finish within {timeout.TotalSeconds:0} s and were killed.");
            }

            return [.. processes.Select(p => p.ExitCode)];
        }
        finally
        {
            // A child left running (a timeout, or a failed start of a sibling) must not outlive the master.
            foreach (var process in processes)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }

                process.Dispose();
            }
        }
    }

    /// <summary>Starts this program with <paramref name="arguments"/>; the child writes to this console.</summary>
    private static Process StartSelf(string[] arguments)
    {
        var processPath = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this process is unknown; cannot start children.");
        var startInfo = new ProcessStartInfo(processPath) { UseShellExecute = false };

        // Run as `dotnet ExecutorsToDriver.dll`, this process is the dotnet host: the child needs the dll too.
        if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            startInfo.ArgumentList.Add(Assembly.GetEntryAssembly()?.Location
                ?? throw new InvalidOperationException("The entry assembly is unknown; cannot start children."));
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        return Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {processPath}.");
    }
}
