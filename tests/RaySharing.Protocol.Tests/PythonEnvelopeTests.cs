using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// The Python package's envelope module (clients/python/raysharing/envelope.py) against the golden vectors, by its own
/// unittest suite run with Debian's python3 and python3-msgpack: valid vectors decode to their JSON and encode to their
/// exact bytes, compatible ones decode and re-encode as a writer would, invalid ones are refused, limits hold at their edges.
/// </summary>
public sealed class PythonEnvelopeTests
{
    [Fact]
    public async Task PythonPackage_GoldenVectorsAndLimits_UnittestSuitePasses()
    {
        DebianPython.AssertInstalled();
        var package = Path.Combine(AppContext.BaseDirectory, "python");
        Assert.True(File.Exists(Path.Combine(package, "raysharing", "envelope.py")), $"The Python package was not copied to {package}.");

        var (exitCode, output) = await DebianPython.RunAsync(package, ["-m", "unittest", "-v", "tests.test_envelope"], TimeSpan.FromSeconds(60),
            new Dictionary<string, string> { ["RAYSHARING_VECTORS"] = Vectors.Directory, ["PYTHONDONTWRITEBYTECODE"] = "1" });

        Assert.DoesNotContain("No module named 'msgpack'", output);
        Assert.True(exitCode == 0, $"The Python envelope suite failed:\n{output}");
        // Its tests ran: a discovery that found none exits 5 on Python 3.12 but 0 on Debian 12's 3.11.
        Assert.Contains("test_invalid_vectors_are_refused", output);
        Assert.Contains("OK", output);
    }
}
