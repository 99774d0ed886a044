using System.Diagnostics;

namespace RaySharing.Testing;

/// <summary>Runs another language's program (python3, node, java) to completion within a bound, and collects what it printed.</summary>
public static class ExternalProgram
{
    /// <summary>
    /// Runs <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="directory"/>; its exit code and
    /// output (stdout, then stderr). A program still running after <paramref name="timeout"/> is killed, with its children.
    /// </summary>
    /// <param name="environment">Variables to set for the child.</param>
    /// <param name="unset">Variables of this process the child must not inherit.</param>
    /// <exception cref="TimeoutException">The program did not finish within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The program could not be started (not installed); the message says so.</exception>
    public static async Task<(int ExitCode, string Output)> RunAsync(
        string program, string directory, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null, IEnumerable<string>? unset = null)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in unset ?? [])
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"{program} could not be started ({ex.Message}): install it (test.sh does).", ex);
        }

        using var _ = process;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish within {timeout}.");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>The full path of <paramref name="name"/> in a directory of PATH, or null when none has it.</summary>
    public static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}
