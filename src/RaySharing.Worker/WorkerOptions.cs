namespace RaySharing.Worker;

/// <summary>Settings of a worker. Every property states its default; <see cref="Validate"/> names the offending option.</summary>
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

    /// <summary>The object store's capacity, in bytes. A put that does not fit fails with STORE_FULL. Default 1 GiB.</summary>
    public long StoreCapacityBytes { get; set; } = 1L << 30;

    /// <summary>The lease granted to a session that does not ask for one. Default 10 seconds.</summary>
    public TimeSpan DefaultLease { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The shortest lease a session may ask for. Default 200 milliseconds.</summary>
    public TimeSpan MinLease { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest lease a session may ask for. Default 5 minutes.</summary>
    public TimeSpan MaxLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the worker looks for sessions whose lease lapsed. Default 100 milliseconds.</summary>
    public TimeSpan LeaseCheckInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The largest object a unary Get returns, and the largest unary Put accepted, in bytes. Default 1 MiB.</summary>
    public int MaxUnaryObjectBytes { get; set; } = 1 << 20;

    /// <summary>The chunk size of a streaming get when the caller states none, in bytes (4 KiB to 4 MiB; 64 KiB to 1 MiB is best). Default 256 KiB.</summary>
    public int StreamChunkBytes { get; set; } = 256 << 10;

    /// <summary>The largest gRPC message sent or received, in bytes (a register of 10,000 refs is about 1.2 MB). Default 64 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;

    /// <summary>How long a streaming put may wait for its next chunk before it is abandoned. Default 30 seconds.</summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many freed objects the worker remembers, so that a get of a freed object says OBJECT_FREED
    /// rather than OBJECT_NOT_FOUND. The oldest are forgotten first. Default 100,000 (about 10 MB).
    /// </summary>
    public int TombstoneCapacity { get; set; } = 100_000;

    private static readonly TimeSpan MaxTime = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option that is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ListenAddress) || !System.Net.IPAddress.TryParse(ListenAddress, out _))
        {
            throw new ArgumentException($"{nameof(ListenAddress)} must be an IP address; got '{ListenAddress}'.", nameof(ListenAddress));
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"{nameof(Port)} must be 0 to 65535; got {Port}.", nameof(Port));
        }

        if (AdvertisedAddress is not null && !Uri.TryCreate(AdvertisedAddress, UriKind.Absolute, out _))
        {
            throw new ArgumentException($"{nameof(AdvertisedAddress)} must be an absolute URI; got '{AdvertisedAddress}'.", nameof(AdvertisedAddress));
        }

        if (StoreCapacityBytes <= 0)
        {
            throw new ArgumentException($"{nameof(StoreCapacityBytes)} must be positive; got {StoreCapacityBytes}.", nameof(StoreCapacityBytes));
        }

        if (MaxLease > MaxTime)
        {
            throw new ArgumentException($"{nameof(MaxLease)} must be at most {MaxTime.TotalDays:0.#} days; got {MaxLease}.", nameof(MaxLease));
        }

        if (MinLease <= TimeSpan.Zero || MinLease > MaxLease)
        {
            throw new ArgumentException($"{nameof(MinLease)} must be positive and at most {nameof(MaxLease)}; got {MinLease} and {MaxLease}.", nameof(MinLease));
        }

        if (DefaultLease < MinLease || DefaultLease > MaxLease)
        {
            throw new ArgumentException($"{nameof(DefaultLease)} must lie between {nameof(MinLease)} and {nameof(MaxLease)}; got {DefaultLease}.", nameof(DefaultLease));
        }

        if (LeaseCheckInterval <= TimeSpan.Zero || LeaseCheckInterval > MinLease)
        {
            throw new ArgumentException($"{nameof(LeaseCheckInterval)} must be positive and at most {nameof(MinLease)} ({MinLease}), or lapsed sessions outlive their lease by more than one; got {LeaseCheckInterval}.", nameof(LeaseCheckInterval));
        }

        if (StreamChunkBytes is < 4096 or > 4 << 20)
        {
            throw new ArgumentException($"{nameof(StreamChunkBytes)} must be 4 KiB to 4 MiB; got {StreamChunkBytes}.", nameof(StreamChunkBytes));
        }

        if (MaxMessageBytes < 1 << 20)
        {
            throw new ArgumentException($"{nameof(MaxMessageBytes)} must be at least 1 MiB; got {MaxMessageBytes}.", nameof(MaxMessageBytes));
        }

        if (MaxUnaryObjectBytes <= 0 || MaxUnaryObjectBytes > MaxMessageBytes - 4096)
        {
            throw new ArgumentException($"{nameof(MaxUnaryObjectBytes)} must be positive and fit in {nameof(MaxMessageBytes)}; got {MaxUnaryObjectBytes}.", nameof(MaxUnaryObjectBytes));
        }

        if (StreamIdleTimeout <= TimeSpan.Zero || StreamIdleTimeout > MaxTime)
        {
            throw new ArgumentException($"{nameof(StreamIdleTimeout)} must be positive and at most {MaxTime.TotalDays:0.#} days; got {StreamIdleTimeout}.", nameof(StreamIdleTimeout));
        }

        if (TombstoneCapacity < 0)
        {
            throw new ArgumentException($"{nameof(TombstoneCapacity)} must not be negative; got {TombstoneCapacity}.", nameof(TombstoneCapacity));
        }
    }
}
