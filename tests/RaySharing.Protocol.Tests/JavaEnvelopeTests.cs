using RaySharing.Testing;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// The Java client's envelope code (clients/java, class raysharing.Envelope) against the golden vectors, by its own check
/// program raysharing.VectorsCheck run with Debian's JDK: valid vectors decode to their JSON and encode to their exact
/// bytes, compatible ones decode and re-encode as their base vector, invalid ones are refused, limits hold at their edges.
/// </summary>
public sealed class JavaEnvelopeTests
{
    // AppContext.BaseDirectory is <repo>/tests/RaySharing.Protocol.Tests/bin/<configuration>/<framework>/.
    private static readonly string RepositoryRoot = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));

    [Fact]
    public async Task VectorsCheck_GoldenVectorsAndLimits_EveryCheckPasses()
    {
        var classpathFile = Path.Combine(RepositoryRoot, "clients", "java", "build", "classpath.txt");
        Assert.True(File.Exists(classpathFile), $"The Java client is not built ({classpathFile} is missing): run clients/java/build.sh (test.sh does).");

        var (exitCode, output) = await ExternalProgram.RunAsync("java", Environment.CurrentDirectory, ["-cp", File.ReadAllText(classpathFile).Trim(), "raysharing.VectorsCheck", Vectors.Directory], TimeSpan.FromSeconds(60));

        Assert.True(exitCode == 0, $"The Java envelope checks failed:\n{output}");
        var lines = output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var passed = lines.Count(l => l.StartsWith("PASS ", StringComparison.Ordinal));
        // The checks ran, all of them: one per invalid vector, two per valid one, and the closing count agrees.
        Assert.Contains($"OK {passed}", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("FAIL ", StringComparison.Ordinal));
        Assert.All(Vectors.InvalidNames, name => Assert.Contains($"PASS invalid {name} is refused", lines));
        Assert.All(Vectors.ValidNames, name => Assert.Contains($"PASS valid {name} encodes to its bytes", lines));
        Assert.Contains("PASS an envelope of 16385 bytes is refused", lines);
    }
}
