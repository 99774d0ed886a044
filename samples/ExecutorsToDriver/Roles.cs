namespace ExecutorsToDriver;

/// <summary>What the master, the executors and the driver agree on.</summary>
internal static class Roles
{
    /// <summary>The holder that owns every partition, so partitions outlive the executors that put them.</summary>
    public const string HolderName = "DUMMY_HOLDER";

    /// <summary>The most executor processes (and so partitions) one run starts.</summary>
    public const int MaxPartitions = 256;

    /// <summary>The bound of every step of one process (connect, put, fetch, get, a child process's run).</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);
}
