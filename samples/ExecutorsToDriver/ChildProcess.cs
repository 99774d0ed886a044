using System.Diagnostics;
using System.Reflection;

namespace ExecutorsToDriver;

/// <summary>Runs more processes of this same program, within a bound.</summary>
internal static class ChildProcess
{
    /// <summary>
    /// Starts one child per role, printing each one's process id, waits for all of them and returns their
    /// exit codes, in order.
    /// </summary>
    /// <exception cref="TimeoutException">Some child ran longer than <paramref name="timeout"/>; it was killed.</exception>
    public static async Task<int[]> RunAllAsync(IEnumerable<(string Name, string[] Arguments)> children, TimeSpan timeout)
    {
        var processes = new List<Process>();
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            foreach (var (name, arguments) in children)
            {
                var process = StartSelf(arguments);
                processes.Add(process);
                Console.WriteLine($"master: {name} is process {process.Id}");
            }

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

    /// <summary>
    /// How a child ended, for a FAILED line: on Unix a child killed by a signal reports 128 + the signal
    /// (137 for SIGKILL), which is worth spelling out.
    /// </summary>
    public static string DescribeExit(int exitCode) =>
        !OperatingSystem.IsWindows() && exitCode > 128 && exitCode < 128 + 65
            ? $"exit {exitCode}, killed by signal {exitCode - 128}"
            : $"exit {exitCode}";

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
