namespace RaySharing.Chaos.Roles;

/// <summary>What every child role shares: client settings, bounds, and dying with the harness.</summary>
internal static class ChildRole
{
    /// <summary>
    /// The harness's bound on one call of a child. The client's own deadlines (<see cref="ClientOptions"/>)
    /// are shorter, so a slow worker is reported by the library, typed, before this bound calls it a hang.
    /// </summary>
    public static readonly TimeSpan CallBound = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Client settings of the children. The lease is the worker's (1 s in chaos runs), so a killed child's
    /// session ends fast; deadlines are short so that every failure surfaces well within the run.
    /// </summary>
    public static RaySharingClientOptions ClientOptions(Uri address, string clientName) => new()
    {
        Address = address,
        ClientName = clientName,
        CallTimeout = TimeSpan.FromSeconds(5),
        StreamIdleTimeout = TimeSpan.FromSeconds(5),
        ConnectTimeout = TimeSpan.FromSeconds(2),
    };

    /// <summary>
    /// Exits this process when its stdin closes. The harness holds the other end, so a child never
    /// outlives the harness, even one killed with SIGKILL that had no chance to kill its children.
    /// </summary>
    public static void ExitWithParent()
    {
        var watcher = new Thread(() =>
        {
            try
            {
                while (Console.In.ReadLine() is not null)
                {
                }
            }
            catch (IOException)
            {
            }

            Environment.Exit(3);
        })
        {
            IsBackground = true,
            Name = "parent watch",
        };
        watcher.Start();
    }
}
