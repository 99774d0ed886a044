using RaySharing;

namespace ExecutorsToDriver;

/// <summary>Builds one partition, hands it to the holder, registers it under the job, and exits.</summary>
internal static class Executor
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        var address = commandLine.RequiredAddress();
        var job = commandLine.Required("--job");
        var index = commandLine.Int("--partition", null, 0, Roles.MaxPartitions - 1);
        var rows = commandLine.Int("--rows", Partition.DefaultRows, 1, Partition.RowStride - 1);

        using var timeout = new CancellationTokenSource(Roles.StepTimeout);
        await using var client = await RaySharingClient.ConnectAsync(
            new RaySharingClientOptions { Address = address, ClientName = $"executor-{index}" }, timeout.Token);
        var holder = await client.GetHolderAsync(Roles.HolderName, cancellationToken: timeout.Token);

        // With the holder as owner the object does not die with this session; registering it under the
        // job keeps it alive after this process exits and its borrow ends.
        var partitionRef = await client.PutAsync(Partition.Build(index, rows), owner: holder, timeout.Token);
        await holder.RegisterAsync(job, [partitionRef], timeout.Token);
        Console.WriteLine($"executor {index}: put {partitionRef.Size} bytes as {partitionRef.Id}");
        return 0;
    }
}
