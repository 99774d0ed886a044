using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// The Python client's own unittest suite (clients/python/tests/test_session.py) against two worker processes: one with
/// the defaults (shared memory on), one with a 4 MiB store and no shared memory (gRPC streaming, STORE_FULL, WRONG_WORKER).
/// </summary>
[Collection(nameof(OtherLanguagesCollection))]
public sealed class PythonClientTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task PythonSessionSuite_AgainstWorkerProcesses_Passes()
    {
        using var worker = BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", "--port", "0");
        using var small = BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", "--port", "0", "--capacity-mb", "4", "--shared-memory", "false");
        var address = (await worker.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        var smallAddress = (await small.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];

        var (exitCode, report) = await PythonPeers.RunAsync(new Dictionary<string, string>
        {
            ["RAYSHARING_ADDRESS"] = address,
            ["RAYSHARING_SMALL_ADDRESS"] = smallAddress,
            ["RAYSHARING_VECTORS"] = Path.Combine(BuildOutputs.RepositoryRoot, "protos", "vectors"),
            ["RAYSHARING_ERRORS_MD"] = Path.Combine(BuildOutputs.RepositoryRoot, "protos", "ERRORS.md"),
        }, TimeSpan.FromMinutes(3), "-m", "unittest", "-v", "tests.test_envelope", "tests.test_session");
        Assert.True(exitCode == 0, $"The Python client's suite failed (exit {exitCode}):\n{report}");
        Assert.Contains("test_every_reason_maps_to_its_own_class_whatever_the_status", report);
        Assert.Contains("test_raw_round_trip_every_size_and_transport", report);
        Assert.DoesNotContain("... skipped", report);
        Assert.DoesNotContain("skipped=", report);
        Assert.Contains("\nOK", report);
        Assert.False(worker.HasExited, "The worker stopped during the Python suite:\n" + worker.StderrTail);
    }
}
