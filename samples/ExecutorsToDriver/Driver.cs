using RaySharing;

namespace ExecutorsToDriver;

/// <summary>Fetches the job's refs from the holder and checks that every partition arrived intact, exactly once.</summary>
internal static class Driver
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        var address = commandLine.RequiredAddress();
        var job = commandLine.Required("--job");
        var partitions = commandLine.Int("--partitions", null, 1, Roles.MaxPartitions);
        var rows = commandLine.Int("--rows", Partition.DefaultRows, 1, Partition.RowStride - 1);

        using var timeout = new CancellationTokenSource(Roles.StepTimeout);
        await using var client = await RaySharingClient.ConnectAsync(
            new RaySharingClientOptions { Address = address, ClientName = "driver" }, timeout.Token);
        var holder = await client.GetHolderAsync(Roles.HolderName, cancellationToken: timeout.Token);

        // The holder returns envelopes only; each get pulls the bytes from the store that holds them.
        var refs = await holder.FetchAsync<Partition>(job, timeout.Token);
        foreach (var stored in refs.GroupBy(r => r.WorkerAddress))
        {
            Console.WriteLine($"driver: {stored.Count()} partitions stored on the worker at {stored.Key}, the holder on {holder.WorkerAddress}");
        }

        try
        {
            var problem = await VerifyAsync(client, refs, partitions, rows, timeout.Token);
            if (problem is not null)
            {
                Console.Error.WriteLine($"driver: FAILED {problem}");
                return 1;
            }
        }
        finally
        {
            await client.ReleaseAsync(refs, timeout.Token);
        }

        Console.WriteLine($"driver: verified {partitions}/{partitions} partitions, {(long)partitions * rows} rows, {refs.Sum(r => r.Size)} bytes");
        return 0;
    }

    /// <summary>Why the fetched partitions are not exactly partitions 0..N-1 as built; null when they are.</summary>
    private static async Task<string?> VerifyAsync(RaySharingClient client, IReadOnlyList<ObjectRef<Partition>> refs, int partitions, int rows, CancellationToken cancellationToken)
    {
        if (refs.Count != partitions)
        {
            return $"job has {refs.Count} refs registered, expected {partitions}";
        }

        // Executors register in whatever order they finish, so partitions are told apart by content.
        var seen = new bool[partitions];
        foreach (var partitionRef in refs)
        {
            var partition = await client.GetAsync(partitionRef, cancellationToken);
            if (Partition.FindMismatch(partition, partitions, rows) is { } mismatch)
            {
                return $"{mismatch} (object {partitionRef.Id})";
            }

            if (seen[partition.Index])
            {
                return $"partition {partition.Index} is registered twice (again as object {partitionRef.Id})";
            }

            seen[partition.Index] = true;
        }

        // N refs, each a distinct index in 0..N-1: every partition is present exactly once.
        return null;
    }
}
