namespace RaySharing.Benchmarks.DataPlane;

/// <summary>Gives both .NET processes' free memory back before a row, so one row's garbage does not count in the next one's peak.</summary>
internal static class ProcessSettle
{
    public static async Task BothAsync(Workload workload, CancellationToken cancellationToken)
    {
        Client();
        await workload.SampleServerAsync(collect: true, cancellationToken).ConfigureAwait(false);
    }

    public static void Client()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }
}
