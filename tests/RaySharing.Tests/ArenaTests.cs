using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Wire;
using RaySharing.Worker;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// The store's arena and allocator, and every state of an in-place put and of a pinned object, driven
/// through the ownership graph as the same-host calls drive it.
/// </summary>
public sealed class ArenaTests
{
    [Fact]
    public void Allocator_FreedNeighbours_MergeBackIntoOneRange()
    {
        var allocator = new ArenaAllocator(4096, 64 * 100);
        var offsets = Enumerable.Range(0, 100).Select(_ => Assert.IsType<long>(Allocate(allocator, 64))).ToList();
        Assert.False(allocator.TryAllocate(1, out _));

        // Freed out of order: every free meets a neighbour sooner or later.
        foreach (var i in Enumerable.Range(0, 100).OrderBy(i => (i * 37) % 100))
        {
            allocator.Free(offsets[i], 64);
        }

        Assert.Equal(64 * 100, allocator.LargestFreeBytes);
        Assert.Equal(4096, Allocate(allocator, 64 * 100));
    }

    [Fact]
    public void Allocator_Ranges_AlignedTo64BytesAndBestFit()
    {
        var allocator = new ArenaAllocator(4096, 1 << 20);
        var a = Allocate(allocator, 1);
        var b = Allocate(allocator, 100);
        var c = Allocate(allocator, 1000);
        Assert.All(new[] { a, b, c }, offset => Assert.Equal(0, offset % ArenaAllocator.Alignment));
        Assert.Equal(a + 64, b);
        Assert.Equal(b + 128, c);

        allocator.Free(b, 100);
        // The 128-byte hole is the best fit for 100 bytes; the big tail is kept whole.
        Assert.Equal(b, Allocate(allocator, 100));
    }

    [Fact]
    public void Store_ArenaFile_UnlinkedAtOnceAndSharedThroughProc()
    {
        using var store = new ObjectStore(8 << 20, shareArena: true);

        Assert.True(store.Arena.IsShared);
        var target = new FileInfo($"/proc/{Environment.ProcessId}/fd/{store.Arena.FileDescriptor}").LinkTarget;
        Assert.NotNull(target);
        Assert.StartsWith($"/dev/shm/raysharing-{Environment.ProcessId}-", target, StringComparison.Ordinal);
        Assert.EndsWith(" (deleted)", target, StringComparison.Ordinal);
        Assert.False(File.Exists(target[..^" (deleted)".Length]));
    }

    [Fact]
    public void Store_ArenaLargerThanTheMachineCanGive_PrivateAndNothingTakenFromTmpfs()
    {
        var available = long.Parse(File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal))["MemAvailable:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        var freeBefore = new DriveInfo("/dev/shm").AvailableFreeSpace;

        // Allocating it in tmpfs would wake the OOM killer rather than fail; the worker must not try.
        using var store = new ObjectStore(Math.Max(available, freeBefore), shareArena: true);

        Assert.False(store.Arena.IsShared);
        Assert.True(new DriveInfo("/dev/shm").AvailableFreeSpace > freeBefore - (256L << 20));
    }

    [Fact]
    public void Store_NotShared_PrivateArenaAndNoOffer()
    {
        using var store = new ObjectStore(8 << 20, shareArena: false);

        Assert.False(store.Arena.IsShared);
        Assert.Equal(-1, store.Arena.FileDescriptor);
    }

    [Fact]
    public void Store_CapacityCountsObjectBytes_NotTheirPadding()
    {
        using var store = new ObjectStore(1 << 20);
        var objects = Enumerable.Range(0, 10_000).Select(_ => store.Reserve(100)).ToList();

        Assert.Equal(1_000_000, store.UsedBytes);
        objects.ForEach(bytes => bytes.Free());
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void AttachSharedMemory_WrongSecret_UnauthorizedAndNotAttached()
    {
        var (graph, store) = NewGraph();
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        var wrong = store.Arena.Secret.ToArray();
        wrong[0] ^= 1;

        AssertReason(ErrorReasons.Unauthorized, () => graph.AttachSharedMemory(session.Token, wrong));
        Assert.False(session.SharedMemoryAttached);
        AssertReason(ErrorReasons.InvalidRequest, () => graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", 10, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void AttachSharedMemory_PrivateArena_InvalidRequest()
    {
        var (graph, _) = NewGraph(share: false);
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");

        AssertReason(ErrorReasons.InvalidRequest, () => graph.AttachSharedMemory(session.Token, new byte[SharedArena.SecretBytes]));
    }

    [Fact]
    public void Seal_BytesWrittenInPlace_CommittedAsAPut()
    {
        var (graph, store, session) = Attached();
        var data = Bytes(100_000, seed: 1);
        var (handle, offset) = graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "t", data.Length, TimeSpan.FromSeconds(30));
        Assert.Equal(data.Length, store.UsedBytes);
        Assert.Equal(0, offset % ArenaAllocator.Alignment);

        WriteInPlace(store, offset, data);
        var stored = graph.Seal(session.Token, handle, Crc(data));

        var envelope = EnvelopeCodec.Decode(stored.EnvelopeBytes);
        Assert.Equal(data.Length, envelope.Size);
        Assert.Equal(Crc(data), envelope.Checksum);
        Assert.Equal(1, graph.Stats().Objects);
    }

    [Fact]
    public void Seal_WrongChecksum_ChecksumMismatchAndNothingStored()
    {
        var (graph, store, session) = Attached();
        var data = Bytes(5000, seed: 2);
        var (handle, offset) = graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", data.Length, TimeSpan.FromSeconds(30));
        WriteInPlace(store, offset, data);

        AssertReason(ErrorReasons.ChecksumMismatch, () => graph.Seal(session.Token, handle, Crc(data) ^ 1));

        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
        // The handle is spent: a second seal does not find it.
        AssertReason(ErrorReasons.InvalidRequest, () => graph.Seal(session.Token, handle, Crc(data)));
    }

    [Fact]
    public void Seal_Twice_SecondIsInvalidRequest()
    {
        var (graph, store, session) = Attached();
        var (handle, _) = graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", 0, TimeSpan.FromSeconds(30));
        graph.Seal(session.Token, handle, 0);

        AssertReason(ErrorReasons.InvalidRequest, () => graph.Seal(session.Token, handle, 0));
        Assert.Equal(1, graph.Stats().Objects);
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void Seal_OwnerKilledWhileWriting_OwnerDiedAndNothingStored()
    {
        var (graph, store, session) = Attached();
        graph.GetOrCreateHolder(session.Token, "", "H", HolderLifetimeKind.Detached);
        var (handle, _) = graph.CreateInArena(session.Token, new HolderAddress("", "H", null), ObjectCodec.Raw, "", 4096, TimeSpan.FromSeconds(30));
        graph.KillHolder(session.Token, new HolderAddress("", "H", null));

        AssertReason(ErrorReasons.OwnerDied, () => graph.Seal(session.Token, handle, Crc(new byte[4096])));
        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
    }

    [Fact]
    public void Create_StoreFull_StoreFullBeforeAnyByteIsWritten()
    {
        var (graph, store, session) = Attached(capacity: 1 << 20);

        AssertReason(ErrorReasons.StoreFull, () => graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", (1 << 20) + 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void AbortAndSessionEnd_UnsealedCreates_GiveTheirRoomBack()
    {
        var (graph, store, session) = Attached();
        var (aborted, _) = graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", 1000, TimeSpan.FromSeconds(30));
        graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", 2000, TimeSpan.FromSeconds(30));
        Assert.Equal(3000, store.UsedBytes);

        graph.AbortCreate(session.Token, aborted);
        graph.AbortCreate(session.Token, aborted);
        Assert.Equal(2000, store.UsedBytes);

        graph.CloseSession(session.Token);
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void ExpireLapsedSessions_CreateNeverSealed_DroppedAfterItsTime()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var (graph, store, session) = Attached(clock: clock);
        var (handle, _) = graph.CreateInArena(session.Token, null, ObjectCodec.Raw, "", 1000, TimeSpan.FromSeconds(5));

        clock.Advance(TimeSpan.FromSeconds(4));
        graph.RequireSession(session.Token);
        graph.ExpireLapsedSessions();
        Assert.Equal(1000, store.UsedBytes);

        clock.Advance(TimeSpan.FromSeconds(2));
        graph.RequireSession(session.Token);
        graph.ExpireLapsedSessions();
        Assert.Equal(0, store.UsedBytes);
        AssertReason(ErrorReasons.InvalidRequest, () => graph.Seal(session.Token, handle, 0));
    }

    [Fact]
    public void Pin_ObjectFreedWhilePinned_RangeKeptUntilUnpinnedAndNeverReused()
    {
        var (graph, store, session) = Attached();
        graph.GetOrCreateHolder(session.Token, "", "H", HolderLifetimeKind.Detached);
        var data = Bytes(10_000, seed: 3);
        var envelope = PutInPlace(graph, store, session, "H", data);
        var pinned = graph.Pin(session.Token, envelope);

        graph.KillHolder(session.Token, new HolderAddress("", "H", null));
        AssertReason(ErrorReasons.OwnerDied, () => graph.Pin(session.Token, envelope));
        Assert.Equal(0, graph.Stats().Objects);
        // The object is gone, its bytes are not: still counted, and a new object of the same size goes elsewhere.
        Assert.Equal(data.Length, store.UsedBytes);
        graph.GetOrCreateHolder(session.Token, "", "H2", HolderLifetimeKind.Detached);
        var other = PutInPlace(graph, store, session, "H2", Bytes(10_000, seed: 4));
        Assert.NotEqual(pinned.Bytes.Offset, graph.Pin(session.Token, other).Bytes.Offset);
        Assert.Equal(Crc(data), pinned.Bytes.ComputeChecksum());

        graph.Unpin(session.Token, [envelope.ObjectId]);
        Assert.Equal(10_000, store.UsedBytes);
    }

    [Fact]
    public void Pin_SessionEnds_ItsPinsAreDropped()
    {
        var (graph, store, session) = Attached();
        graph.GetOrCreateHolder(session.Token, "", "H", HolderLifetimeKind.Detached);
        var envelope = PutInPlace(graph, store, session, "H", Bytes(3000, seed: 5));
        var reader = graph.OpenSession("", TimeSpan.FromSeconds(30), "reader");
        graph.AttachSharedMemory(reader.Token, store.Arena.Secret);
        graph.Pin(reader.Token, envelope);
        graph.Pin(reader.Token, envelope);
        graph.KillHolder(session.Token, new HolderAddress("", "H", null));
        Assert.Equal(3000, store.UsedBytes);

        graph.CloseSession(reader.Token);

        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void Unpin_MoreThanPinned_Ignored()
    {
        var (graph, store, session) = Attached();
        graph.GetOrCreateHolder(session.Token, "", "H", HolderLifetimeKind.Detached);
        var envelope = PutInPlace(graph, store, session, "H", Bytes(3000, seed: 6));
        graph.Pin(session.Token, envelope);

        graph.Unpin(session.Token, [envelope.ObjectId, envelope.ObjectId, envelope.ObjectId]);
        graph.KillHolder(session.Token, new HolderAddress("", "H", null));

        Assert.Equal(0, store.UsedBytes);
    }

    private static RefEnvelope PutInPlace(OwnershipGraph graph, ObjectStore store, SessionState session, string holder, byte[] data)
    {
        var (handle, offset) = graph.CreateInArena(session.Token, new HolderAddress("", holder, null), ObjectCodec.Raw, "", data.Length, TimeSpan.FromSeconds(30));
        WriteInPlace(store, offset, data);
        var stored = graph.Seal(session.Token, handle, Crc(data));
        var envelope = EnvelopeCodec.Decode(stored.EnvelopeBytes);
        // The putter's own borrow dropped: the holder alone keeps it (it is not registered, so only pins do).
        graph.Register(session.Token, new HolderAddress("", holder, null), "k" + envelope.ObjectId, [envelope]);
        graph.Release(session.Token, [envelope.ObjectId]);
        return envelope;
    }

    private static unsafe void WriteInPlace(ObjectStore store, long offset, byte[] data) =>
        data.CopyTo(new Span<byte>(store.Arena.At(offset), data.Length));

    private static byte[] Bytes(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static uint Crc(byte[] data) => System.IO.Hashing.Crc32.HashToUInt32(data);

    private static long Allocate(ArenaAllocator allocator, long size)
    {
        Assert.True(allocator.TryAllocate(size, out var offset));
        return offset;
    }

    private static (OwnershipGraph Graph, ObjectStore Store) NewGraph(bool share = true, long capacity = 64 << 20, TimeProvider? clock = null)
    {
        var options = new WorkerOptions { Port = 0 };
        var identity = new WorkerIdentity(options) { Address = "http://127.0.0.1:1" };
        var store = new ObjectStore(capacity, share);
        return (new OwnershipGraph(identity, store, options, NullLogger<OwnershipGraph>.Instance, clock ?? TimeProvider.System), store);
    }

    private static (OwnershipGraph Graph, ObjectStore Store, SessionState Session) Attached(long capacity = 64 << 20, TimeProvider? clock = null)
    {
        var (graph, store) = NewGraph(capacity: capacity, clock: clock);
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        graph.AttachSharedMemory(session.Token, store.Arena.Secret);
        return (graph, store, session);
    }

    private static void AssertReason(string reason, Action call)
    {
        var ex = Assert.Throws<WorkerException>(call);
        Assert.Equal(reason, ex.Reason);
    }
}
