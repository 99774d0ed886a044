namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// One way RaySharing moves an object's bytes between the client and the worker. Every path stores into the
/// same worker through the same session, so rows of different paths differ only in how the bytes travel.
/// </summary>
internal interface IDataPath
{
    /// <summary>The path's name in rows and target lines: grpc, shm, shm-lease, bulk.</summary>
    string Name { get; }

    /// <summary>Stores <paramref name="data"/> as a RAW object owned by the session's holder.</summary>
    Task<ObjectRef> PutAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>The client the path's calls go through.</summary>
    RaySharingClient Client { get; }

    /// <summary>Brings the object's bytes to the client, into memory of the client's (a warm buffer, or a lease); returns their count.</summary>
    Task<long> GetAsync(ObjectRef stored, CancellationToken cancellationToken);

    /// <summary>Gives refs back so the store does not fill between repetitions.</summary>
    Task ReleaseAsync(IReadOnlyList<ObjectRef> refs, CancellationToken cancellationToken);
}

/// <summary>The paths a run measures, and the ones the targets expect.</summary>
internal static class DataPaths
{
    public const string Grpc = "grpc";
    public const string Shm = "shm";
    public const string ShmLease = "shm-lease";
    public const string Bulk = "bulk";

    /// <summary>Every path the targets name; the ones not in <see cref="Create"/> print as MISSING.</summary>
    public static readonly IReadOnlyList<string> Planned = [Grpc, Shm, ShmLease, Bulk];

    /// <summary>
    /// The paths to measure: one line each. The workload's client is on the worker's host, so it uses shared memory
    /// (and the channel's Unix socket for calls that fit a frame); the grpc path gets a client of its own with shared
    /// memory and the channel turned off, and the bulk path one with shared memory off, so its bytes cross the
    /// channel's TCP connections as they would from another host.
    /// </summary>
    public static async Task<IReadOnlyList<IDataPath>> CreateAsync(Workload workload, CancellationToken cancellationToken)
    {
        if (!workload.Client.UsesSharedMemory)
        {
            throw new InvalidOperationException("The benchmark's client did not attach the worker's shared memory; the shm rows would measure gRPC.");
        }

        var grpc = await ConnectAsync(workload, "bench-grpc", useChannel: false, cancellationToken).ConfigureAwait(false);
        var bulk = await ConnectAsync(workload, "bench-bulk", useChannel: true, cancellationToken).ConfigureAwait(false);
        if (!bulk.Client.UsesChannel)
        {
            throw new InvalidOperationException("The bulk path's client could not reach the worker's channel; its rows would measure gRPC.");
        }

        return
        [
            new CopyPath(DataPaths.Grpc, grpc.Client, grpc.Holder),
            new CopyPath(DataPaths.Shm, workload.Client, workload.Holder),
            new SharedMemoryLeasePath(workload.Client, workload.Holder),
            new CopyPath(DataPaths.Bulk, bulk.Client, bulk.Holder),
        ];
    }

    private static async Task<(RaySharingClient Client, ObjectHolder Holder)> ConnectAsync(Workload workload, string name, bool useChannel, CancellationToken cancellationToken)
    {
        var client = await RaySharingClient.ConnectAsync(new RaySharingClientOptions
        {
            Address = new Uri(workload.Client.WorkerAddress),
            ClientName = name,
            UseSharedMemory = false,
            UseChannel = useChannel,
        }, cancellationToken).ConfigureAwait(false);
        return (client, await client.GetHolderAsync(workload.Holder.Name, cancellationToken: cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The shm path's get into the new array GetBytesAsync returns: its row's direction.</summary>
    public const string GetArray = "get-array";

    /// <summary>
    /// The rows of one path: a put and a get of each size; the shm path also gets into a new array each time
    /// (GetBytesAsync), the row the "get into a new array" target compares with the shm-copy baseline.
    /// </summary>
    public static IEnumerable<TransferCase> Cases(IDataPath path, ProcessProbe server)
    {
        yield return new TransferCase("raysharing", path.Name, "get", server, (size, ct) => GetTransferAsync(path, path.GetAsync, size, ct));
        if (path.Name == Shm)
        {
            yield return new TransferCase("raysharing", path.Name, GetArray, server,
                (size, ct) => GetTransferAsync(path, async (stored, c) => (await path.Client.GetBytesAsync(stored, c).ConfigureAwait(false)).Length, size, ct));
        }

        yield return new TransferCase("raysharing", path.Name, "put", server, (size, ct) => Task.FromResult(PutTransfer(path, size)));
    }

    /// <summary>One object stored before the row, got once per repetition (by <paramref name="get"/>), released after it.</summary>
    private static async Task<ITransfer> GetTransferAsync(IDataPath path, Func<ObjectRef, CancellationToken, Task<long>> get, long size, CancellationToken cancellationToken)
    {
        ObjectRef stored;
        using (var source = new NativeBuffer(size))
        {
            stored = await path.PutAsync(source.Memory, cancellationToken).ConfigureAwait(false);
        }

        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                var length = await get(stored, ct).ConfigureAwait(false);
                if (length != size)
                {
                    throw new InvalidOperationException($"A {path.Name} get returned {length} bytes instead of {size}.");
                }
            }),
            async () => await path.ReleaseAsync([stored], CancellationToken.None).ConfigureAwait(false));
    }

    /// <summary>A put from a warm native buffer per repetition; its ref is released right after, outside the timing.</summary>
    private static ITransfer PutTransfer(IDataPath path, long size)
    {
        var source = new NativeBuffer(size);
        return new DelegateTransfer(
            async ct =>
            {
                ObjectRef? stored = null;
                var time = await DelegateTransfer.TimeAsync(async () => stored = await path.PutAsync(source.Memory, ct).ConfigureAwait(false)).ConfigureAwait(false);
                await path.ReleaseAsync([stored!], ct).ConfigureAwait(false);
                return time;
            },
            () =>
            {
                source.Free();
                return ValueTask.CompletedTask;
            });
    }
}

/// <summary>
/// A path that copies the object's bytes to the client: PutEncodedAsync of RAW bytes, and CopyToAsync into a warm
/// buffer the client reuses (one per concurrent caller), the way the raw-socket baseline and Redis' pooled lease
/// receive, so the rows compare transports rather than the page faults of a new destination each time (the shm
/// path's get-array row shows those). What carries the bytes depends on the client: gRPC for the grpc path (unary up
/// to 1 MiB, streamed above); for the bulk path the channel over TCP (one frame up to 1 MiB, ticketed bodies above);
/// for the shm path the worker's arena from 64 KiB up (a pin over the channel's Unix socket and a copy out of shared
/// memory) and one channel frame below.
/// </summary>
internal class CopyPath(string name, RaySharingClient client, ObjectHolder holder) : IDataPath
{
    private readonly System.Collections.Concurrent.ConcurrentBag<WarmWriter> _destinations = [];

    public string Name => name;

    public RaySharingClient Client => client;

    public Task<ObjectRef> PutAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        client.PutEncodedAsync(data, ObjectCodec.Raw, owner: holder, cancellationToken: cancellationToken);

    public virtual async Task<long> GetAsync(ObjectRef stored, CancellationToken cancellationToken)
    {
        if (!_destinations.TryTake(out var destination))
        {
            destination = new WarmWriter();
        }

        try
        {
            destination.Reset(stored.Size);
            await client.CopyToAsync(stored, destination, cancellationToken: cancellationToken).ConfigureAwait(false);
            return destination.WrittenCount;
        }
        finally
        {
            _destinations.Add(destination);
        }
    }

    public Task ReleaseAsync(IReadOnlyList<ObjectRef> refs, CancellationToken cancellationToken) =>
        client.ReleaseAsync(refs, cancellationToken);

    /// <summary>A buffer writer over one warm native buffer, grown (and written once) only when an object is larger.</summary>
    private sealed class WarmWriter : System.Buffers.IBufferWriter<byte>
    {
        private NativeBuffer? _buffer;

        public int WrittenCount { get; private set; }

        public void Reset(long capacity)
        {
            if (_buffer is null || _buffer.Length < capacity)
            {
                _buffer?.Free();
                _buffer = new NativeBuffer(Math.Max(capacity, 1));
            }

            WrittenCount = 0;
        }

        public void Advance(int count) => WrittenCount += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => WrittenCount < _buffer!.Length ? _buffer.Memory[WrittenCount..] : throw new InvalidOperationException("The warm buffer is full.");

        public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
    }
}

/// <summary>
/// A zero-copy get: GetLeaseAsync maps the worker's own copy, and every byte is read once, by the lease's
/// VerifyChecksum (a CRC-32 of its memory compared with the ref's checksum), so nothing is left unread that a copy
/// would have touched. Puts as the shm path.
/// </summary>
internal sealed class SharedMemoryLeasePath(RaySharingClient client, ObjectHolder holder) : CopyPath(DataPaths.ShmLease, client, holder)
{
    public override async Task<long> GetAsync(ObjectRef stored, CancellationToken cancellationToken)
    {
        using var lease = await Client.GetLeaseAsync(stored, cancellationToken).ConfigureAwait(false);
        // Small objects are copied by design (a channel call costs less than a pin); the large rows must be zero-copy.
        if (!lease.IsZeroCopy && stored.Size >= 64 * 1024)
        {
            throw new InvalidOperationException("The lease is a copy: the shm-lease rows would not measure a zero-copy get.");
        }

        lease.VerifyChecksum();
        return lease.Length;
    }
}
