namespace RaySharing.Chaos.Chaos;

/// <summary>The one process a chaos round SIGKILLs.</summary>
internal enum KillKind
{
    /// <summary>An executor (the one with the largest object), a random 0–400 ms after it starts its put.</summary>
    ExecutorMidPut,

    /// <summary>The driver, a random moment after it fetched the refs, while it gets them.</summary>
    DriverMidGet,

    /// <summary>The creator of the session-lifetime holder, after it announced its object.</summary>
    HolderCreator,

    /// <summary>The worker itself, while the driver is getting.</summary>
    WorkerMidTransfer,

    /// <summary>Cluster mode: the worker that hosts the holder, while the driver (on a third worker) gets from the storing one.</summary>
    HoldersWorkerMidGet,

    /// <summary>Cluster mode: the worker that stores the executors' objects (put for the holder of another), while the driver gets them.</summary>
    StoringWorkerMidGet,

    /// <summary>Cluster mode: redis-server, restarted empty on its port within a fraction of the cluster lease, before the driver runs.</summary>
    RedisRestart,
}

internal static class KillKinds
{
    public static readonly KillKind[] All = Enum.GetValues<KillKind>();

    /// <summary>The kinds of the one-worker harness.</summary>
    public static readonly KillKind[] SingleWorker = [KillKind.ExecutorMidPut, KillKind.DriverMidGet, KillKind.HolderCreator, KillKind.WorkerMidTransfer];

    /// <summary>The kinds of the cluster harness.</summary>
    public static readonly KillKind[] Cluster = [KillKind.ExecutorMidPut, KillKind.DriverMidGet, KillKind.HoldersWorkerMidGet, KillKind.StoringWorkerMidGet, KillKind.RedisRestart];

    public static string Label(this KillKind kind) => kind switch
    {
        KillKind.ExecutorMidPut => "(a) executor mid-put",
        KillKind.DriverMidGet => "(b) driver mid-get",
        KillKind.HolderCreator => "(c) session-holder creator",
        KillKind.WorkerMidTransfer => "(d) worker mid-transfer",
        KillKind.HoldersWorkerMidGet => "(e) holder's worker mid-get",
        KillKind.StoringWorkerMidGet => "(f) storing worker mid-get",
        _ => "(g) redis restarted empty",
    };

    /// <summary>
    /// A schedule that rotates fairly: every block of rounds has each of <paramref name="kinds"/> once, in an order
    /// shuffled by the seeded random, so kinds stay balanced and their order does not repeat.
    /// </summary>
    public static KillKind[] Schedule(int rounds, KillKind[] kinds, Random random)
    {
        var schedule = new List<KillKind>(rounds + kinds.Length);
        while (schedule.Count < rounds)
        {
            var block = kinds.ToArray();
            random.Shuffle(block);
            schedule.AddRange(block);
        }

        return [.. schedule.Take(rounds)];
    }
}
