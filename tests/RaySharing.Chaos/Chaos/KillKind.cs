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
}

internal static class KillKinds
{
    public static readonly KillKind[] All = Enum.GetValues<KillKind>();

    public static string Label(this KillKind kind) => kind switch
    {
        KillKind.ExecutorMidPut => "(a) executor mid-put",
        KillKind.DriverMidGet => "(b) driver mid-get",
        KillKind.HolderCreator => "(c) session-holder creator",
        _ => "(d) worker mid-transfer",
    };

    /// <summary>
    /// A schedule that rotates fairly: every block of four rounds has each kind once, in an order
    /// shuffled by the seeded random, so kinds stay balanced and their order does not repeat.
    /// </summary>
    public static KillKind[] Schedule(int rounds, Random random)
    {
        var schedule = new List<KillKind>(rounds + All.Length);
        while (schedule.Count < rounds)
        {
            var block = All.ToArray();
            random.Shuffle(block);
            schedule.AddRange(block);
        }

        return [.. schedule.Take(rounds)];
    }
}
