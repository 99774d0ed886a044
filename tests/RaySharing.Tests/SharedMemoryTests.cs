using RaySharing.Testing;
using System.Buffers;
using System.IO.Hashing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Same-host transfers through the worker's arena, end to end through the client, beside the same calls with
/// shared memory turned off (gRPC streaming): both paths give the same bytes and the same errors.
/// </summary>
public sealed class SharedMemoryTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Connect_SameHost_UsesSharedMemoryUnlessEitherSideTurnsItOff()
    {
        await using var worker = await TestWorker.StartAsync();
        await using var privateWorker = await TestWorker.StartAsync(o => o.SharedMemory = false);

        Assert.True((await worker.ConnectAsync()).UsesSharedMemory);
        Assert.False((await worker.ConnectAsync(o => o.UseSharedMemory = false)).UsesSharedMemory);
        Assert.False((await privateWorker.ConnectAsync()).UsesSharedMemory);
    }

    [Fact]
    public async Task AttachSharedMemory_WrongSecretOverTheWire_PermissionDeniedUnauthorized()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Sessions", "AttachSharedMemory", RawWire.Field(1, new byte[32]), client.SessionToken);
        var (createStatus, createReason) = await wire.CallAsync("raysharing.v1.Objects", "Create", RawWire.Field(1, []), client.SessionToken);

        Assert.Equal((Grpc.Core.StatusCode.PermissionDenied, "UNAUTHORIZED"), (status, reason));
        Assert.Equal((Grpc.Core.StatusCode.InvalidArgument, "INVALID_REQUEST"), (createStatus, createReason));
    }

    [Theory]
    [InlineData(true, 64 << 10)]
    [InlineData(true, 3 << 20)]
    [InlineData(false, 3 << 20)]
    public async Task PutAndGet_EveryApi_SameBytesBack(bool sharedMemory, int size)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var data = Bytes(size, seed: size);

        var fromMemory = await client.PutEncodedAsync(data, owner: holder).Within();
        var fromSequence = await client.PutEncodedAsync(Split(data, 3), owner: holder).Within();
        var fromStream = await client.PutEncodedAsync(new MemoryStream(data), data.Length, owner: holder).Within();

        foreach (var objectRef in new[] { fromMemory, fromSequence, fromStream })
        {
            Assert.Equal(Crc32.HashToUInt32(data), objectRef.Checksum);
            Assert.Equal(data, await client.GetBytesAsync(objectRef).Within());
            var writer = new ArrayBufferWriter<byte>();
            await client.CopyToAsync(objectRef, writer).Within();
            Assert.Equal(data, writer.WrittenSpan.ToArray());
            var stream = new MemoryStream();
            await client.CopyToAsync(objectRef, stream).Within();
            Assert.Equal(data, stream.ToArray());
            using var lease = await client.GetLeaseAsync(objectRef).Within();
            Assert.Equal(sharedMemory, lease.IsZeroCopy);
            Assert.Equal(data, lease.Memory.ToArray());
            lease.VerifyChecksum();
        }

        Assert.Equal(3L * size, (await client.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PutAndCopyTo_Progress_ReportsEveryChunkUpToTheSize(bool sharedMemory)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var data = Bytes(5 << 20, seed: 9);
        var sent = new List<long>();
        var received = new List<long>();

        var objectRef = await client.PutEncodedAsync(new MemoryStream(data), data.Length, progress: new SyncProgress(sent)).Within();
        await client.CopyToAsync(objectRef, Stream.Null, new SyncProgress(received)).Within();

        foreach (var reports in new[] { sent, received })
        {
            Assert.True(reports.Count >= 5, $"{reports.Count} reports");
            Assert.Equal(reports.Order(), reports);
            Assert.Equal(data.Length, reports[^1]);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PutFromStream_StreamEndsEarly_ArgumentExceptionNothingStoredClientStillWorks(bool sharedMemory)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => client.PutEncodedAsync(new MemoryStream(new byte[1 << 20]), 2 << 20).Within());

        Assert.Contains("ended after 1048576 of the 2097152 bytes", ex.Message, StringComparison.Ordinal);
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the short put leaves nothing reserved");
        Assert.Equal(Bytes(200_000, 1), await client.GetBytesAsync(await client.PutEncodedAsync(Bytes(200_000, 1)).Within()).Within());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task CopyTo_DestinationThrows_ItsExceptionAndTheClientStillWorks(bool sharedMemory)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var objectRef = await client.PutEncodedAsync(Bytes(3 << 20, 2)).Within();

        await Assert.ThrowsAsync<IOException>(() => client.CopyToAsync(objectRef, new FailingStream()).Within());

        Assert.Equal(Bytes(3 << 20, 2), await client.GetBytesAsync(objectRef).Within());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Lease_HolderKilledWhileLeased_BytesStayIntactUntilDisposed(bool pinOverChannel)
    {
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = 8 << 20);
        var client = await worker.ConnectAsync(o => o.UseChannel = pinOverChannel);
        Assert.Equal(pinOverChannel, client.UsesChannel);
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var data = Bytes(3 << 20, 3);
        var objectRef = await client.PutEncodedAsync(data, owner: holder).Within();
        var lease = await client.GetLeaseAsync(objectRef).Within();

        await client.KillHolderAsync(holder).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetBytesAsync(objectRef).Within());
        // The store is nearly full: new puts must go around the leased range, not over it.
        var other = await client.GetOrCreateHolderAsync("H2").Within();
        await client.PutEncodedAsync(Bytes(3 << 20, 4), owner: other).Within();
        await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutEncodedAsync(Bytes(3 << 20, 5), owner: other).Within());
        Assert.Equal(data, lease.Memory.ToArray());

        // DisposeAsync waits for the worker to drop the pin: the room is back when it returns.
        await lease.DisposeAsync().Within();
        Assert.Equal(3 << 20, (await client.GetStoreStatsAsync().Within()).UsedBytes);
        await client.PutEncodedAsync(Bytes(3 << 20, 5), owner: other).Within();
        Assert.Throws<ObjectDisposedException>(() => lease.Memory);
        lease.Dispose();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Get_ManyConcurrentSameHostGets_EveryPinDroppedAfterwards(bool pinOverChannel)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseChannel = pinOverChannel);
        Assert.True(client.UsesSharedMemory);
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var data = Bytes(256 << 10, 8);
        var objectRef = await client.PutEncodedAsync(data, owner: holder).Within();

        var gets = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => client.GetBytesAsync(objectRef))).Within();
        Assert.All(gets, bytes => Assert.Equal(data, bytes));

        // Freed by the kill, the object's range returns only once every get's pin was dropped.
        await client.KillHolderAsync(holder).Within();
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "every pin of the 64 gets is dropped");
    }

    [Fact]
    public async Task Lease_ProcessKilledHoldingOne_ReleasedWithItsSession()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var owner = await worker.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        var data = Bytes(2 << 20, 6);
        var objectRef = await owner.PutEncodedAsync(data, owner: holder).Within();
        using var reader = BuildOutputs.Start("tests/RaySharing.TestPeer", "RaySharing.TestPeer", "lease", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes()));
        var line = await reader.WaitForLineAsync("LEASED", ProcessTimeout);
        Assert.Equal($"LEASED true {Crc32.HashToUInt32(data):x8}", line);
        await owner.KillHolderAsync(holder).Within();
        Assert.Equal(data.Length, (await owner.GetStoreStatsAsync().Within()).UsedBytes);

        reader.Kill();

        await worker.AdvanceUntilAsync(Lease, async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, "the killed reader's pin drops with its session");
    }

    [Fact]
    public async Task InPlacePut_WriterKilledMidWrite_NoReservationAndNoObjectLeft()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var owner = await worker.ConnectAsync();
        await owner.GetOrCreateHolderAsync("H").Within();
        using var writer = BuildOutputs.Start("tests/RaySharing.TestPeer", "RaySharing.TestPeer", "stall-put", "--address", worker.Address, "--size", (8 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), "--holder", "H");
        await writer.WaitForLineAsync("STALLED", ProcessTimeout);
        Assert.Equal((8L << 20, 0L), await UsedAndObjectsAsync(owner));

        writer.Kill();

        await worker.AdvanceUntilAsync(Lease, async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, "the killed writer's reservation drops with its session");
        Assert.Equal((0L, 0L), await UsedAndObjectsAsync(owner));
    }

    [Fact]
    public async Task ObjectBeyondTwoGiB_PutFromStreamAndCopiedOut_SameBytes()
    {
        const long Size = (2L << 30) + 12345;
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = Size + (1 << 20));
        var client = await worker.ConnectAsync();
        Assert.True(client.UsesSharedMemory);

        var objectRef = await client.PutEncodedAsync(new PatternStream(Size), Size).Within(TimeSpan.FromMinutes(2));
        var copy = new CrcStream();
        await client.CopyToAsync(objectRef, copy).Within(TimeSpan.FromMinutes(2));
        using var lease = await client.GetLeaseAsync(objectRef).Within();

        Assert.Equal(Size, objectRef.Size);
        Assert.Equal(Size, copy.Length);
        Assert.Equal(objectRef.Checksum, copy.Checksum);
        Assert.Equal(Size, lease.Bytes.Length);
        Assert.False(lease.Bytes.IsSingleSegment);
        Assert.Throws<InvalidOperationException>(() => lease.Memory);
        lease.VerifyChecksum();
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetBytesAsync(objectRef).Within());
    }

    [Fact]
    public async Task VerifyChecksum_BytesNotTheSealedOnes_ChecksumMismatchNamingTheObject_AndDisposedLeaseRefuses()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var data = new byte[(1 << 20) + 17];
        new Random(5).NextBytes(data);
        var objectRef = await client.PutEncodedAsync(data).Within();
        var tampered = (byte[])data.Clone();
        tampered[^3] ^= 0x40;

        // The worker's mapping is read-only to clients, so bytes that differ from the sealed ones are made here.
        var wrong = new ObjectLease(objectRef, new ReadOnlySequence<byte>(tampered), isZeroCopy: false, release: null, releaseAsync: null);
        var ex = Assert.Throws<ChecksumMismatchException>(wrong.VerifyChecksum);

        Assert.Equal(objectRef.Id, ex.ObjectId);
        Assert.Contains(objectRef.Id.ToString(), ex.Message, StringComparison.Ordinal);
        var lease = await client.GetLeaseAsync(objectRef).Within();
        lease.VerifyChecksum();
        await lease.DisposeAsync().Within();
        Assert.Throws<ObjectDisposedException>(lease.VerifyChecksum);
    }

    [Fact]
    public async Task ObjectBeyondTwoGiB_OverTheBulkChannel_PutFromStreamAndCopiedOut_SameBytes()
    {
        const long Size = (2L << 30) + 12345;
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = Size + (1 << 20));
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        Assert.True(client.UsesChannel);
        Assert.False(client.UsesSharedMemory);

        var objectRef = await client.PutEncodedAsync(new PatternStream(Size), Size).Within(TimeSpan.FromMinutes(2));
        var copy = new CrcStream();
        await client.CopyToAsync(objectRef, copy).Within(TimeSpan.FromMinutes(2));

        Assert.Equal(Size, objectRef.Size);
        Assert.Equal(Size, copy.Length);
        Assert.Equal(objectRef.Checksum, copy.Checksum);
    }

    private static async Task<(long Used, long Objects)> UsedAndObjectsAsync(RaySharingClient client)
    {
        var stats = await client.GetStoreStatsAsync().Within();
        return (stats.UsedBytes, stats.Objects);
    }

    private static byte[] Bytes(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static ReadOnlySequence<byte> Split(byte[] data, int parts)
    {
        var size = data.Length / parts;
        return RaySharing.Wire.Sequences.Of([.. Enumerable.Range(0, parts).Select(i => (ReadOnlyMemory<byte>)data.AsMemory(i * size, i == parts - 1 ? data.Length - (i * size) : size))]);
    }

    /// <summary>Records reports on the reporting thread, unlike <see cref="Progress{T}"/>, so the list is complete when the call returns.</summary>
    private sealed class SyncProgress(List<long> reports) : IProgress<long>
    {
        public void Report(long value)
        {
            lock (reports)
            {
                reports.Add(value);
            }
        }
    }

    /// <summary>A write-only stream that fails every write.</summary>
    private sealed class FailingStream : WriteOnlyTestStream
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => throw new IOException("the disk is full");
    }

    /// <summary>
    /// A stream of <c>length</c> bytes made on the fly from a block whose odd length keeps it out of step with
    /// every chunk size, so a huge put needs no array of its size.
    /// </summary>
    private sealed class PatternStream(long length) : ReadOnlyTestStream
    {
        private static readonly byte[] Block = Bytes((1 << 20) + 7, seed: 42);

        public override long Length => length;

        public override int Read(Span<byte> buffer)
        {
            var count = (int)Math.Min(buffer.Length, length - Given);
            var done = 0;
            while (done < count)
            {
                var at = (int)((Given + done) % Block.Length);
                var run = Math.Min(count - done, Block.Length - at);
                Block.AsSpan(at, run).CopyTo(buffer[done..]);
                done += run;
            }

            Given += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    }

    /// <summary>A write-only stream that keeps only the CRC-32 and count of what it was given.</summary>
    private sealed class CrcStream : WriteOnlyTestStream
    {
        private readonly Crc32 _crc = new();
        private long _length;

        public uint Checksum => _crc.GetCurrentHashAsUInt32();

        public override long Length => _length;

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _crc.Append(buffer.Span);
            _length += buffer.Length;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A writer that breaks IBufferWriter's contract: room for a few bytes, then none.</summary>
    private sealed class NoRoomWriter : System.Buffers.IBufferWriter<byte>
    {
        private readonly byte[] _buffer = new byte[16];
        private int _written;

        public void Advance(int count) => _written += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => _buffer.AsMemory(_written);

        public Span<byte> GetSpan(int sizeHint = 0) => _buffer.AsSpan(_written);
    }

    [Theory]
    [InlineData(true, 100)]
    [InlineData(false, 100)]
    [InlineData(false, 3 << 20)]
    public async Task CopyTo_WriterThatGivesNoRoom_FailsInsteadOfLooping(bool channel, int size)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => { o.UseSharedMemory = false; o.UseChannel = channel; });
        Assert.Equal(channel, client.UsesChannel);
        var objectRef = await client.PutEncodedAsync(new byte[size]).Within();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => client.CopyToAsync(objectRef, new NoRoomWriter()).Within());
        Assert.Contains("IBufferWriter", ex.Message, StringComparison.Ordinal);
        // The session is unharmed: the same object reads whole into a proper writer.
        var writer = new ArrayBufferWriter<byte>();
        await client.CopyToAsync(objectRef, writer).Within();
        Assert.Equal(size, writer.WrittenCount);
    }
}
