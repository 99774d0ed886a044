using RaySharing.Testing;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>Runs Debian's python3, with Debian's packages (python3-msgpack), whatever python a developer has on PATH.</summary>
internal static class DebianPython
{
    public const string Path = "/usr/bin/python3";

    public static void AssertInstalled() =>
        Assert.True(File.Exists(Path), $"{Path} is missing: install Debian's python3 and python3-msgpack (test.sh does).");

    /// <summary>Runs python3 with <paramref name="arguments"/> in <paramref name="directory"/>; its exit code and output (stdout, then stderr).</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(string directory, IEnumerable<string> arguments, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null) =>
        // A developer's PYTHONPATH or PYTHONHOME would put another msgpack in front of Debian's.
        ExternalProgram.RunAsync(Path, directory, arguments, timeout, environment, unset: ["PYTHONPATH", "PYTHONHOME"]);
}
