using System.Diagnostics;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>Runs Debian's python3, with Debian's packages (python3-msgpack), whatever python a developer has on PATH.</summary>
internal static class DebianPython
{
    public const string Path = "/usr/bin/python3";

    public static void AssertInstalled() =>
        Assert.True(File.Exists(Path), $"{Path} is missing: install Debian's python3 and python3-msgpack (test.sh does).");

    /// <summary>Runs python3 with <paramref name="arguments"/> in <paramref name="directory"/>; its exit code and output (stdout, then stderr).</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string directory, IEnumerable<string> arguments, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Path, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment.Remove("PYTHONPATH");
        start.Environment.Remove("PYTHONHOME");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
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
            throw new TimeoutException($"python3 {string.Join(' ', arguments)} did not finish within {timeout}.");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
