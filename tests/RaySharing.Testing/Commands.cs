using System.Diagnostics;
using System.Globalization;

namespace RaySharing.Testing;

/// <summary>What a one-off command did: its exit code and everything it printed.</summary>
/// <param name="Command">The command line, quoted as a shell would need it, for messages.</param>
/// <param name="ExitCode">Its exit code; 0 is success.</param>
/// <param name="StandardOutput">Everything it wrote to stdout.</param>
/// <param name="StandardError">Everything it wrote to stderr.</param>
public sealed record CommandResult(string Command, int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>True when it exited with 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>The command, its exit code and its output, for an assertion message.</summary>
    public override string ToString() =>
        $"`{Command}` exited {ExitCode.ToString(CultureInfo.InvariantCulture)}; stdout: {StandardOutput.Trim()}; stderr: {StandardError.Trim()}";
}

/// <summary>Runs one-off commands (ip, redis-cli) to completion with a bound, output captured.</summary>
internal static class Commands
{
    /// <summary>Runs the command and waits at most <paramref name="timeout"/>; null when it did not finish in time (it is then killed).</summary>
    public static CommandResult? Run(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        using var process = Start(fileName, arguments, out var stdout, out var stderr);
        if (!process.WaitForExit(timeout))
        {
            Kill(process);
            return null;
        }

        // The output readers finish once the pipes close; a grandchild that kept them open must not hang us.
        if (!Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5)))
        {
            return null;
        }

        return new CommandResult(Quote(fileName, arguments), process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>As <see cref="Run"/>, awaiting instead of blocking.</summary>
    public static async Task<CommandResult?> RunAsync(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var process = Start(fileName, arguments, out var stdout, out var stderr);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
            await Task.WhenAll(stdout, stderr).WaitAsync(TimeSpan.FromSeconds(5), bound.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            Kill(process);
            cancellationToken.ThrowIfCancellationRequested();
            return null;
        }

        return new CommandResult(Quote(fileName, arguments), process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>The command line as one string, arguments quoted where a shell would need it.</summary>
    public static string Quote(string fileName, IEnumerable<string> arguments) =>
        string.Join(' ', arguments.Prepend(fileName).Select(a => a.Length > 0 && !a.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '$' or '\\') ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));

    private static Process Start(string fileName, IReadOnlyList<string> arguments, out Task<string> stdout, out Task<string> stderr)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start `{Quote(fileName, arguments)}`.");
        // Nothing is fed to it: a command that reads stdin sees its end at once instead of waiting.
        process.StandardInput.Close();
        stdout = process.StandardOutput.ReadToEndAsync();
        stderr = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // It exited between the timeout and the kill.
        }
    }
}
