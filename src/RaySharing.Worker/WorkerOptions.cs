using RaySharing.Wire;

namespace RaySharing.Worker;

/// <summary>
/// Settings of a worker. Every property states its default and range. A worker copies and validates them when
/// it starts: a later change to this object does not change a running worker. Out-of-range values fail with a
/// message naming the option (<see cref="Validate"/>, or ValidateOnStart when bound through
/// <c>AddRaySharingWorker</c>). Rules between options: <see cref="MinLease"/> &lt;= <see cref="DefaultLease"/>
/// &lt;= <see cref="MaxLease"/>; <see cref="LeaseCheckInterval"/> &lt;= <see cref="MinLease"/>;
/// <see cref="MaxUnaryObjectBytes"/> and <see cref="StreamChunkBytes"/> each at most
/// <see cref="MaxMessageBytes"/> less 4 KiB.
/// </summary>
public sealed class WorkerOptions
{
    /// <summary>The IP address to listen on. Default <c>127.0.0.1</c>.</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>The TCP port to listen on; 0 picks a free port (see <see cref="RaySharingWorker.Address"/>). Default 7480.</summary>
    public int Port { get; set; } = 7480;

    /// <summary>
    /// The address written into ref envelopes so other processes can reach this worker, for example
    /// <c>http://10.0.0.5:7480</c>. Default null: <c>http://{ListenAddress}:{bound port}</c>.
    /// </summary>
    public string? AdvertisedAddress { get; set; }

    /// <summary>The object store's capacity, in bytes; positive. A put that does not fit fails with STORE_FULL. Default 1 GiB.</summary>
    public long StoreCapacityBytes { get; set; } = 1L << 30;

    /// <summary>
    /// Whether clients on this host may move bytes through shared memory: the store's arena is then a file in
    /// <c>/dev/shm</c> (mode 0600, unlinked at once) that processes of the worker's user, and root, can map.
    /// False keeps the arena private, and every byte goes over the network paths. Linux only; elsewhere the
    /// arena is always private. Default true.
    /// </summary>
    public bool SharedMemory { get; set; } = true;

    /// <summary>
    /// The tmpfs directory the shared-memory arena is made in; an absolute path. On a tmpfs mounted with
    /// <c>huge=always</c> (<c>mount -t tmpfs -o huge=always,size=8G tmpfs /mnt/raysharing</c>) the arena uses 2 MiB
    /// pages: a process's first touch of each page, which costs several microseconds per 4 KiB page on some
    /// virtual machines, happens 512 times less often. Default <c>/dev/shm</c>.
    /// </summary>
    public string SharedMemoryDirectory { get; set; } = "/dev/shm";

    /// <summary>
    /// Whether the worker serves the binary channel (protos/CHANNEL.md) beside gRPC: clients then make small puts,
    /// gets, borrows and releases over it (a Unix domain socket on this host, TCP from others) and move bulk bytes
    /// as channel bodies when shared memory is not theirs to use. False leaves gRPC the only transport. Default true.
    /// </summary>
    public bool Channel { get; set; } = true;

    /// <summary>
    /// The channel's TCP port on <see cref="ListenAddress"/>; 0 (the default) picks a free port, which sessions
    /// learn when they open (OpenSessionReply.channel). Set one for firewalls between hosts. Clients reach it at
    /// the host of the worker's address (<see cref="AdvertisedAddress"/> when set).
    /// </summary>
    public int ChannelPort { get; set; }

    /// <summary>
    /// The directory of the channel's Unix domain socket (<c>raysharing-&lt;pid&gt;-&lt;random&gt;.sock</c>, mode 0600; sockets left
    /// there by workers that died are removed at start); an absolute path, or empty for no socket (same-host
    /// clients then use TCP). Default the system's temporary directory.
    /// </summary>
    public string ChannelSocketDirectory { get; set; } = Path.GetTempPath();

    /// <summary>The lease granted to a session that does not ask for one; between <see cref="MinLease"/> and <see cref="MaxLease"/>. Default 10 seconds.</summary>
    public TimeSpan DefaultLease { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The shortest lease a session may ask for; shorter requests are raised to it. Positive, at most <see cref="MaxLease"/>. Default 200 milliseconds.</summary>
    public TimeSpan MinLease { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest lease a session may ask for; longer requests are lowered to it. At most 24.8 days (int.MaxValue ms). Default 5 minutes.</summary>
    public TimeSpan MaxLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the worker looks for sessions whose lease lapsed; positive, at most <see cref="MinLease"/>. Default 100 milliseconds.</summary>
    public TimeSpan LeaseCheckInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The largest object a unary Get returns, and the largest unary Put accepted, in bytes; positive, at most <see cref="MaxMessageBytes"/> less 4 KiB. Default 1 MiB.</summary>
    public int MaxUnaryObjectBytes { get; set; } = 1 << 20;

    /// <summary>The chunk size of a streaming get when the caller states none, in bytes: 4 KiB to 4 MiB (64 KiB to 1 MiB is best), at most <see cref="MaxMessageBytes"/> less 4 KiB. Default 256 KiB.</summary>
    public int StreamChunkBytes { get; set; } = 256 << 10;

    /// <summary>The largest gRPC message sent or received, in bytes; at least 2 MiB (a register of 10,000 refs is about 1.2 MB). Default 64 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;

    /// <summary>How long a streaming put or get may wait for its next chunk before it is abandoned; positive, at most 24.8 days. Default 30 seconds.</summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many freed objects the worker remembers, so that a get of a freed object says OBJECT_FREED
    /// rather than OBJECT_NOT_FOUND. The oldest are forgotten first; 0 remembers none. Default 100,000 (about 10 MB).
    /// </summary>
    public int TombstoneCapacity { get; set; } = 100_000;

    /// <summary>
    /// The most bytes of objects the worker may spill to disk when memory runs short; 0 turns spilling off. With
    /// spilling on, once objects in memory pass 90% of <see cref="StoreCapacityBytes"/> the worker moves sealed
    /// objects that no reader pins (least recently used first) to files in <see cref="SpillDirectory"/>, in the
    /// background (a put that memory cannot take at once spills what it needs itself); a get brings them back,
    /// checked against their CRC-32, or fails with OBJECT_LOST if the file no longer reads back intact. A put is
    /// refused with STORE_FULL only when memory and this limit are both used up. Off by default because it writes
    /// to disk: choose a directory on a local disk with room for this many bytes. Default 0.
    /// </summary>
    public long SpillCapacityBytes { get; set; }

    /// <summary>
    /// Where spill files go, an absolute path, created if missing. The worker makes its own subdirectory there
    /// (<c>raysharing-spill-&lt;pid&gt;-&lt;random&gt;</c>, mode 0700) and removes it when it stops; at start it removes
    /// the subdirectories of workers that are gone (crashed), so a restart leaves no spill files behind. A directory
    /// that cannot be written fails the start, naming this option. Used only when <see cref="SpillCapacityBytes"/> is
    /// positive. Default null: the system's temporary directory (<see cref="Path.GetTempPath"/>).
    /// </summary>
    public string? SpillDirectory { get; set; }

    /// <summary>
    /// The Redis directory that makes this worker one of a cluster, as a StackExchange.Redis configuration string
    /// (<c>redis-host:6379</c>, or <c>host:6379,password=...</c>). Workers of one <see cref="ClusterName"/> on one
    /// Redis find each other's holders there: a holder name maps to one worker and incarnation however many
    /// workers ask for it at once. The worker registers itself under a key that lapses unless renewed within
    /// <see cref="ClusterLease"/>; a start fails when the directory cannot be reached. Default null: a single
    /// worker, which needs nothing external.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>
    /// The cluster this worker joins in the <see cref="Redis"/> directory: workers with the same name share holders,
    /// workers with different names on one Redis never see each other. 1 to 64 letters, digits, '-', '_' or '.'.
    /// Default <c>default</c>.
    /// </summary>
    public string ClusterName { get; set; } = "default";

    /// <summary>
    /// How long the worker's registration in the <see cref="Redis"/> directory lives without renewal; it is renewed
    /// every third of it. A worker that cannot renew it for a whole lease (Redis unreachable, the worker stalled)
    /// is dead to the cluster: it stops serving and its holders die with it, as other workers already consider
    /// them dead. 1 second to 10 minutes. Default 10 seconds.
    /// </summary>
    public TimeSpan ClusterLease { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Whether <see cref="Redis"/> makes this worker part of a cluster.</summary>
    internal bool IsClustered => !string.IsNullOrEmpty(Redis);

    /// <summary>The largest chunk a streaming get sends: 4 MiB, or less when <see cref="MaxMessageBytes"/> is smaller.</summary>
    internal int MaxStreamChunkBytes => Math.Min(OptionLimits.MaxChunkBytes, OptionLimits.PayloadLimit(MaxMessageBytes));

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first option that is out of range
    /// (<see cref="ArgumentException.ParamName"/> is the property's name).
    /// </summary>
    public void Validate()
    {
        foreach (var failure in WorkerOptionsValidator.Failures(this))
        {
            throw new ArgumentException(failure.Message, failure.Option);
        }
    }

    /// <summary>A copy, so a worker keeps the values it started with whatever the caller does to its object later.</summary>
    internal WorkerOptions Clone() => (WorkerOptions)MemberwiseClone();
}
