using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace RaySharing.Tests;

/// <summary>Runs after the parallel tests, alone, so their load does not starve the chaos harness's processes.</summary>
[CollectionDefinition(nameof(ReliabilityCollection), DisableParallelization = true)]
public sealed class ReliabilityCollection;

/// <summary>
/// The chaos loop and the load run of tests/RaySharing.Chaos, as CI runs them. Each writes its table to
/// TestResults/ at the repository root (test.sh prints them); the harness exits non-zero on any hang,
/// leak, wrong byte, untyped error or violated expectation.
/// </summary>
[Collection(nameof(ReliabilityCollection))]
public sealed class ReliabilityTests(ITestOutputHelper output)
{
    private static string ResultFile(string name)
    {
        var folder = Path.Combine(BuildOutputs.RepositoryRoot, "TestResults");
        Directory.CreateDirectory(folder);
        return Path.Combine(folder, name);
    }

    [Fact]
    public async Task Chaos_FiftyRoundsOfRandomKills_NoHangsNoLeaksNoWrongBytes()
    {
        using var chaos = BuildOutputs.Start("tests/RaySharing.Chaos", "RaySharing.Chaos", "chaos", "--rounds", "50", "--out", ResultFile("chaos.md"));

        var exitCode = await chaos.WaitForExitCodeAsync(TimeSpan.FromMinutes(12));

        output.WriteLine(chaos.StandardOutput);
        Assert.True(exitCode == 0, chaos.Describe());
    }

    [Fact]
    public async Task ClusterChaos_RandomKillsOfExecutorsDriverWorkersAndRedis_NoHangsNoLeaksNoWrongBytes()
    {
        using var chaos = BuildOutputs.Start("tests/RaySharing.Chaos", "RaySharing.Chaos", "cluster-chaos", "--rounds", "15", "--out", ResultFile("cluster-chaos.md"));

        var exitCode = await chaos.WaitForExitCodeAsync(TimeSpan.FromMinutes(8));

        output.WriteLine(chaos.StandardOutput);
        Assert.True(exitCode == 0, chaos.Describe());
    }

    [Fact]
    public async Task Load_ThirtyTwoSessionsMixedOperations_NothingLostWrongOrLeaked()
    {
        using var load = BuildOutputs.Start("tests/RaySharing.Chaos", "RaySharing.Chaos", "load", "--sessions", "32", "--seconds", "15", "--out", ResultFile("load.md"));

        var exitCode = await load.WaitForExitCodeAsync(TimeSpan.FromMinutes(3));

        output.WriteLine(load.StandardOutput);
        Assert.True(exitCode == 0, load.Describe());
    }
}
