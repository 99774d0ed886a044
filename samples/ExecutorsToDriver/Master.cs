using System.Globalization;
using RaySharing;
using RaySharing.Worker;

namespace ExecutorsToDriver;

/// <summary>
/// Creates the holder, runs N executor processes then one driver process against it, and cleans up.
/// Succeeds only if every executor succeeded and the driver verified every partition.
/// </summary>
internal static class Master
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        var executors = commandLine.Int("--executors", 4, 1, Roles.MaxPartitions);
        var rows = commandLine.Int("--rows", Partition.DefaultRows, 1, Partition.RowStride - 1);
        var externalAddress = commandLine.Address();

        using var setup = new CancellationTokenSource(Roles.StepTimeout);
        // Without --address the master hosts the worker; it outlives every child, which connect over loopback.
        await using var worker = externalAddress is null
            ? await RaySharingWorker.StartAsync(new WorkerOptions { Port = 0 }, cancellationToken: setup.Token)
            : null;
        var address = externalAddress?.OriginalString ?? worker!.Address;
        Console.WriteLine(worker is null ? $"master: using worker at {address}" : $"master: started embedded worker at {address}");

        var driverAddress = commandLine.DriverAddress()?.OriginalString ?? address;
        if (worker is not null && commandLine.DriverAddress() is not null)
        {
            throw new ArgumentException("--driver-address names another worker of a cluster; give --address too (the embedded worker is in no cluster).");
        }

        // The holder lives with the driver: in a cluster, the executors' partitions stay on their own worker, owned
        // by the holder on the driver's, and the driver reads them from where they are.
        await using var client = await RaySharingClient.ConnectAsync(
            new RaySharingClientOptions { Address = new Uri(driverAddress), ClientName = "master" }, setup.Token);
        var holder = await client.GetOrCreateHolderAsync(Roles.HolderName, cancellationToken: setup.Token);
        Console.WriteLine($"master: holder {holder.Name}, incarnation {holder.Incarnation}, on the worker at {holder.WorkerAddress}");
        if (driverAddress != address)
        {
            Console.WriteLine($"master: the executors use the worker at {address}, which stores their partitions for the holder; the driver uses {driverAddress} and reads them from there");
        }

        var job = Guid.NewGuid().ToString("N");
        try
        {
            return await RunJobAsync(address, driverAddress, job, executors, rows);
        }
        finally
        {
            // The job's partitions live as long as the key registers them: unregistering frees them.
            using var cleanup = new CancellationTokenSource(Roles.StepTimeout);
            var removed = await holder.UnregisterAsync(job, cleanup.Token);
            var stats = await client.GetStoreStatsAsync(cleanup.Token);
            Console.WriteLine($"master: unregistered job {job} ({removed} refs); the store now holds {stats.Objects} objects, {stats.UsedBytes} bytes");
        }
    }

    private static async Task<int> RunJobAsync(string address, string driverAddress, string job, int executors, int rows)
    {
        Console.WriteLine($"master: job {job}: starting {executors} executor processes, {rows} rows each");
        var rowsText = rows.ToString(CultureInfo.InvariantCulture);
        var executorCodes = await ChildProcess.RunAllAsync(Enumerable.Range(0, executors).Select(i => ($"executor {i}", (string[])
            ["executor", "--address", address, "--job", job, "--partition", i.ToString(CultureInfo.InvariantCulture), "--rows", rowsText])), Roles.StepTimeout);
        var failed = executorCodes.Select((code, i) => (code, i)).Where(e => e.code != 0).ToList();
        if (failed.Count > 0)
        {
            Console.Error.WriteLine($"master: FAILED: executors {string.Join(", ", failed.Select(e => $"{e.i} ({ChildProcess.DescribeExit(e.code)})"))}");
            return 1;
        }

        // Every executor process has exited: its session is gone, yet the holder keeps its partition.
        Console.WriteLine($"master: all {executors} executors exited 0; starting the driver process");
        var driverCode = (await ChildProcess.RunAllAsync(
            [("driver", ["driver", "--address", driverAddress, "--job", job, "--partitions", executors.ToString(CultureInfo.InvariantCulture), "--rows", rowsText])], Roles.StepTimeout))[0];
        if (driverCode != 0)
        {
            // Whatever the driver's code (its own 1, or 137 when it was killed), the run failed: say so, exit 1.
            Console.Error.WriteLine($"master: FAILED: the driver did not verify the job ({ChildProcess.DescribeExit(driverCode)})");
            return 1;
        }

        Console.WriteLine("master: driver exited 0");
        return 0;
    }
}
