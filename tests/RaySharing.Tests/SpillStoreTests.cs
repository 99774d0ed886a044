using System.IO.Hashing;
using RaySharing.Wire;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Every state of a spilling object, driven on the store itself: being put (never spills), sealed in memory,
/// pinned (never spills), moving, spilled, restored, freed while spilled, and the failures: a spill file that is
/// damaged, truncated or gone, no room to restore, no room to spill, a directory that cannot be written.
/// </summary>
public sealed class SpillStoreTests : IDisposable
{
    private const int ObjectBytes = 256 << 10;
    private const long Capacity = 4L << 20;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"spill-tests-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Reserve_PastCapacity_SpillsOldestAndEveryObjectReadsBackIntact()
    {
        using var store = Store(spillBytes: 32L << 20);
        var objects = Enumerable.Range(0, 40).Select(i => Put(store, i)).ToList();

        Assert.True(store.UsedBytes <= Capacity);
        Assert.True(store.SpilledBytes >= 40L * ObjectBytes - Capacity);
        Assert.Equal(store.SpilledBytes, FilesOf(store).Sum(f => new FileInfo(f).Length));
        // Least recently used first: the first objects went out, the last are still in memory.
        Assert.True(objects[0].Bytes.IsSpilled);
        Assert.False(objects[^1].Bytes.IsSpilled);

        foreach (var (bytes, seed) in objects.Select((o, i) => (o.Bytes, i)))
        {
            Assert.Equal(Payload(seed), Read(store, bytes));
        }

        Assert.True(store.UsedBytes <= Capacity);
        Assert.Equal(store.SpilledBytes, FilesOf(store).Sum(f => new FileInfo(f).Length));
    }

    [Fact]
    public async Task Reserve_PastTheMark_BackgroundSpillerBringsMemoryBackUnderIt()
    {
        using var store = new ObjectStore(Capacity, spill: new SpillSettings(_directory, 32L << 20));
        var objects = Enumerable.Range(0, 16).Select(i => Put(store, i)).ToList();

        await SettledAsync(store);

        Assert.True(store.UsedBytes <= (long)(Capacity * SpillSettings.DefaultHighWaterFraction));
        Assert.True(store.SpilledBytes >= 16L * ObjectBytes - (long)(Capacity * SpillSettings.DefaultHighWaterFraction));
        Assert.True(objects[0].Bytes.IsSpilled);
        // Memory full, the spiller behind: a reservation spills what it needs itself.
        var more = Enumerable.Range(16, 40).Select(i => Put(store, i)).ToList();
        foreach (var (bytes, seed) in objects.Concat(more).Select((o, i) => (o.Bytes, i)))
        {
            Assert.Equal(Payload(seed), Read(store, bytes));
        }

        await SettledAsync(store);
        Assert.Equal(store.SpilledBytes, FilesOf(store).Sum(f => new FileInfo(f).Length));
    }

    [Fact]
    public void Reserve_MemoryAndSpillLimitFull_StoreFullNamingBothFigures()
    {
        using var store = Store(spillBytes: 1L << 20);
        // 14 objects stay under the 90% mark, 4 fill the spill limit, 2 more fill memory.
        for (var i = 0; i < 20; i++)
        {
            Put(store, i);
        }

        var ex = Assert.Throws<WorkerException>(() => store.Reserve(ObjectBytes));

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Equal(1L << 20, store.SpilledBytes);
        Assert.Contains($"of {Capacity} bytes are in memory", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{1L << 20} of the {1L << 20} bytes the spill files may hold are used", ex.Message, StringComparison.Ordinal);
        Assert.Contains("--spill-capacity-mb", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reserve_LargerThanMemory_StoreFullWithoutSpillingAnything()
    {
        using var store = Store(spillBytes: 32L << 20);
        var kept = Put(store, 1);

        var ex = Assert.Throws<WorkerException>(() => store.Reserve(Capacity + 1));

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Contains("must fit in memory", ex.Message, StringComparison.Ordinal);
        Assert.False(kept.Bytes.IsSpilled);
        Assert.Equal(0, store.SpilledBytes);
    }

    [Fact]
    public void Reserve_PinnedObjects_NeverSpillAndTheirRangesKeepTheirBytes()
    {
        using var store = Store(spillBytes: 32L << 20);
        var pinned = Enumerable.Range(0, 4).Select(i => Put(store, i)).ToList();
        pinned.ForEach(p => Assert.True(p.Bytes.TryPin()));
        var offsets = pinned.Select(p => p.Bytes.Offset).ToList();

        for (var i = 10; i < 60; i++)
        {
            Put(store, i);
        }

        Assert.All(pinned, p => Assert.False(p.Bytes.IsSpilled));
        Assert.Equal(offsets, pinned.Select(p => p.Bytes.Offset));
        foreach (var (p, seed) in pinned.Select((p, i) => (p, i)))
        {
            using (store.Arena.Access())
            {
                Assert.Equal(Payload(seed), p.Bytes.AsMemory().ToArray());
            }

            p.Bytes.Unpin();
        }

        // Unpinned, they may go now.
        for (var i = 60; i < 80; i++)
        {
            Put(store, i);
        }

        Assert.Contains(pinned, p => p.Bytes.IsSpilled);
    }

    [Fact]
    public void Reserve_OnlyPinnedAndUnsealedObjectsInMemory_StoreFullAndNothingSpilled()
    {
        using var store = Store(spillBytes: 32L << 20);
        // Puts in progress: reserved and written, never sealed.
        var unsealed = Enumerable.Range(0, 8).Select(i => Reserve(store, i)).ToList();
        // Pinned as soon as committed, as a same-host lease would be.
        var pinned = Enumerable.Range(8, 7).Select(i =>
        {
            var put = Put(store, i);
            Assert.True(put.Bytes.TryPin());
            return put;
        }).ToList();

        var ex = Assert.Throws<WorkerException>(() => store.Reserve(2 * ObjectBytes));

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Equal(0, store.SpilledBytes);
        Assert.Empty(FilesOf(store));
        Assert.All(unsealed, u => Assert.Equal(1, u.Count));
        foreach (var (u, seed) in unsealed.Select((u, i) => (u, i)))
        {
            Assert.Equal(Payload(seed), Read(store, u));
        }

        pinned.ForEach(p => p.Bytes.Unpin());
        unsealed.ForEach(u => u.Free());
        pinned.ForEach(p => p.Bytes.Free());
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public void Free_SpilledObject_DeletesItsFileAndGivesBackSpillBytes()
    {
        using var store = Store(spillBytes: 32L << 20);
        var objects = Enumerable.Range(0, 24).Select(i => Put(store, i)).ToList();
        var spilled = objects.Where(o => o.Bytes.IsSpilled).ToList();
        Assert.NotEmpty(spilled);

        foreach (var (bytes, _) in spilled)
        {
            bytes.Free();
            Assert.Equal(0, bytes.Count);
            Assert.False(bytes.TryPin());
        }

        Assert.Equal(0, store.SpilledBytes);
        Assert.Empty(FilesOf(store));
        objects.Except(spilled).ToList().ForEach(o => o.Bytes.Free());
        Assert.Equal(0, store.UsedBytes);
        Assert.Throws<InvalidOperationException>(() => spilled[0].Bytes.Free());
    }

    [Fact]
    public void TryPin_RestoredObject_FileDeletedAndSpillBytesBack()
    {
        using var store = Store(spillBytes: 32L << 20);
        var objects = Enumerable.Range(0, 20).Select(i => Put(store, i)).ToList();
        var first = objects[0].Bytes;
        Assert.True(first.IsSpilled);
        var spilledBefore = store.SpilledBytes;

        Assert.True(first.TryPin());

        Assert.False(first.IsSpilled);
        Assert.Equal(2, first.Count);
        Assert.False(File.Exists(Path.Combine(store.SpillPath!, $"{first.Id}.spill")));
        Assert.True(store.SpilledBytes <= spilledBefore);
        first.Unpin();
        first.Free();
        Assert.False(first.TryPin());
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("truncate")]
    [InlineData("delete")]
    public void TryPin_DamagedSpillFile_ObjectLostEveryTimeAndFreeStillCleansUp(string damage)
    {
        using var store = Store(spillBytes: 32L << 20);
        var objects = Enumerable.Range(0, 20).Select(i => Put(store, i)).ToList();
        var (victim, _) = objects[0];
        var file = Path.Combine(store.SpillPath!, $"{victim.Id}.spill");
        Assert.True(File.Exists(file));
        switch (damage)
        {
            case "flip":
                using (var stream = File.OpenWrite(file))
                {
                    stream.Position = 1000;
                    stream.WriteByte((byte)(Payload(0)[1000] ^ 0xFF));
                }

                break;
            case "truncate":
                File.WriteAllBytes(file, Payload(0)[..1000]);
                break;
            default:
                File.Delete(file);
                break;
        }

        var usedBefore = store.UsedBytes;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var ex = Assert.Throws<WorkerException>(() => victim.TryPin());
            Assert.Equal(ErrorReasons.ObjectLost, ex.Reason);
            Assert.Equal(victim.Id, ex.ObjectId);
            Assert.Contains(victim.Id.ToString(), ex.Message, StringComparison.Ordinal);
        }

        // The failed restores left nothing reserved; the object stays spilled, and the rest of the store works.
        Assert.True(victim.IsSpilled);
        Assert.True(store.UsedBytes <= usedBefore);
        Assert.Equal(Payload(1), Read(store, objects[1].Bytes));
        victim.Free();
        Assert.False(File.Exists(file));
        objects.Skip(1).ToList().ForEach(o => o.Bytes.Free());
        AssertNothingLeft(store);
    }

    [Fact]
    public void TryPin_SpilledButMemoryAllPinned_StoreFullThenRestoresOnceUnpinned()
    {
        using var store = Store(spillBytes: 32L << 20);
        var first = Put(store, 0);
        var rest = Enumerable.Range(1, 20).Select(i => Put(store, i)).ToList();
        Assert.True(first.Bytes.IsSpilled);
        var resident = rest.Where(r => !r.Bytes.IsSpilled).ToList();
        resident.ForEach(r => Assert.True(r.Bytes.TryPin()));
        // The rest of memory taken by a put in progress.
        var filler = store.Reserve(Capacity - store.UsedBytes);

        var ex = Assert.Throws<WorkerException>(() => first.Bytes.TryPin());

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Equal(first.Id, ex.ObjectId);
        Assert.Contains("no room to bring it back", ex.Message, StringComparison.Ordinal);
        Assert.True(first.Bytes.IsSpilled);
        filler.Free();
        resident.ForEach(r => r.Bytes.Unpin());
        Assert.Equal(Payload(0), Read(store, first.Bytes));
    }

    [Fact]
    public void Reserve_SpillWriteFails_ObjectStaysInMemoryAndPutIsStoreFull()
    {
        using var store = Store(spillBytes: 32L << 20);
        var objects = Enumerable.Range(0, 14).Select(i => Put(store, i)).ToList();
        // The directory gone under the worker: every write fails as a full or failing disk would.
        Directory.Delete(store.SpillPath!, recursive: true);

        var ex = Assert.Throws<WorkerException>(() =>
        {
            for (var i = 14; i < 40; i++)
            {
                Put(store, i);
            }
        });

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Equal(0, store.SpilledBytes);
        foreach (var (bytes, seed) in objects.Select((o, i) => (o.Bytes, i)))
        {
            Assert.False(bytes.IsSpilled);
            Assert.Equal(Payload(seed), Read(store, bytes));
        }
    }

    [Fact]
    public void NewStore_SameDirectory_RemovesDirectoriesOfDeadWorkersOnly()
    {
        using var live = Store(spillBytes: 8L << 20);
        Put(live, 1);
        // A worker that crashed: its lock file is there, but nobody holds it.
        var crashed = Path.Combine(_directory, $"{SpillFiles.DirectoryPrefix}{Environment.ProcessId}-dead0001");
        Directory.CreateDirectory(crashed);
        File.WriteAllText(Path.Combine(crashed, SpillFiles.LockFileName), "");
        File.WriteAllBytes(Path.Combine(crashed, $"{ObjectId.NewId()}.spill"), new byte[100]);
        // A worker that died before it made its lock file: its pid runs no more.
        var unlocked = Path.Combine(_directory, $"{SpillFiles.DirectoryPrefix}{int.MaxValue}-dead0002");
        Directory.CreateDirectory(unlocked);
        // Not a spill directory: never touched.
        var other = Directory.CreateDirectory(Path.Combine(_directory, "something-else")).FullName;

        using var restarted = Store(spillBytes: 8L << 20);

        Assert.False(Directory.Exists(crashed));
        Assert.False(Directory.Exists(unlocked));
        Assert.True(Directory.Exists(other));
        Assert.True(Directory.Exists(live.SpillPath));
        Assert.True(Directory.Exists(restarted.SpillPath));
        Assert.NotEqual(live.SpillPath, restarted.SpillPath);
    }

    [Fact]
    public void Dispose_RemovesItsOwnDirectoryWithItsFiles()
    {
        var store = Store(spillBytes: 32L << 20);
        for (var i = 0; i < 24; i++)
        {
            Put(store, i);
        }

        var path = store.SpillPath!;
        Assert.NotEmpty(FilesOf(store));

        store.Dispose();

        Assert.False(Directory.Exists(path));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_directory));
    }

    [Fact]
    public void NewStore_SpillDirectoryCannotBeMade_ArgumentExceptionNamingTheOption()
    {
        Directory.CreateDirectory(_directory);
        var file = Path.Combine(_directory, "a-file");
        File.WriteAllText(file, "not a directory");

        var ex = Assert.Throws<ArgumentException>(() => new ObjectStore(Capacity, spill: new SpillSettings(Path.Combine(file, "spill"), 8L << 20)));

        Assert.Equal("SpillDirectory", ex.ParamName);
        Assert.Contains(Path.Combine(file, "spill"), ex.Message, StringComparison.Ordinal);
        Assert.Contains("--spill-dir", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NewStore_SpillingOff_NoDirectoryAndPlainStoreFull()
    {
        using var store = new ObjectStore(Capacity, spill: new SpillSettings(_directory, 0));
        for (var i = 0; i < 16; i++)
        {
            Put(store, i);
        }

        var ex = Assert.Throws<WorkerException>(() => store.Reserve(ObjectBytes));

        Assert.Equal(ErrorReasons.StoreFull, ex.Reason);
        Assert.Null(store.SpillPath);
        Assert.False(Directory.Exists(_directory));
    }

    [Fact]
    public async Task PinsAndPuts_ConcurrentUnderSpillPressure_EveryReadIntactAndCountsBalance()
    {
        const int Objects = 400;
        const int Size = 64 << 10;
        // The background spiller on: it races the pins and the putter's own spills.
        using var store = new ObjectStore(2L << 20, spill: new SpillSettings(_directory, 64L << 20));
        var objects = new StoredBytes[Objects];
        var failures = 0;
        var putter = Task.Run(() =>
        {
            for (var i = 0; i < Objects; i++)
            {
                Volatile.Write(ref objects[i], Put(store, i, Size).Bytes);
            }
        });
        var readers = Enumerable.Range(0, 3).Select(r => Task.Run(() =>
        {
            var random = new Random(r);
            var reads = 0;
            while (!putter.IsCompleted || reads < 200)
            {
                var i = random.Next(Objects);
                var bytes = Volatile.Read(ref objects[i]);
                if (bytes is null)
                {
                    continue;
                }

                if (!Read(store, bytes).AsSpan().SequenceEqual(Payload(i, Size)))
                {
                    Interlocked.Increment(ref failures);
                }

                reads++;
            }
        })).ToArray();

        await Task.WhenAll([putter, .. readers]).Within(TimeSpan.FromSeconds(60));

        await SettledAsync(store);
        Assert.Equal(0, failures);
        Assert.True(store.SpilledBytes > 0);
        Assert.All(objects, o => Assert.Equal(o.IsSpilled ? StoredBytes.Spilled : 1, o.Count));
        foreach (var o in objects)
        {
            o.Free();
        }

        AssertNothingLeft(store);
    }

    [Fact]
    public async Task TryPin_RacingSpillsOfTheSameObject_APinnedObjectNeverMovesAndAlwaysReadsRight()
    {
        using var store = Store(spillBytes: 32L << 20);
        var (bytes, _) = Put(store, 5, 64 << 10);
        var expected = Payload(5, 64 << 10);
        var spills = 0;
        var wrong = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var spiller = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                // The only candidate: each pass either spills it or finds it pinned.
                if (store.SpillOne() && Interlocked.Increment(ref spills) == 50)
                {
                    stop.Cancel();
                }
            }
        });
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            var reads = 0;
            while (!stop.IsCancellationRequested || reads == 0)
            {
                Assert.True(bytes.TryPin());
                var offset = bytes.Offset;
                using (store.Arena.Access())
                {
                    if (!bytes.AsMemory().Span.SequenceEqual(expected) || bytes.Offset != offset || bytes.IsSpilled)
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }

                bytes.Unpin();
                reads++;
                // A gap with no pin, for the spiller to find.
                Thread.SpinWait(reads % 64 * 20);
            }
        })).ToArray();

        await Task.WhenAll([spiller, .. readers]).Within(TimeSpan.FromSeconds(30));

        Assert.Equal(0, wrong);
        Assert.True(spills > 0);
        bytes.Free();
        AssertNothingLeft(store);
    }

    [Fact]
    public async Task Free_RacingSpills_NothingLeftReservedAndNoFileLeft()
    {
        using var store = Store(spillBytes: 64L << 20);
        var objects = Enumerable.Range(0, 12).Select(i => Put(store, i, 64 << 10).Bytes).ToList();
        using var stop = new CancellationTokenSource();
        var spiller = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                store.SpillOne();
            }
        });

        // Freed in memory, while being spilled, and spilled; some restored first.
        foreach (var (o, i) in objects.Select((o, i) => (o, i)))
        {
            if (i % 3 == 0)
            {
                Assert.True(o.TryPin());
                o.Unpin();
            }

            Thread.Sleep(1);
            o.Free();
        }

        await stop.CancelAsync();
        await spiller.Within(TimeSpan.FromSeconds(30));

        Assert.All(objects, o => Assert.Equal(0, o.Count));
        AssertNothingLeft(store);
    }

    /// <summary>A store that spills on the reserving thread only, so each test sees one exact sequence.</summary>
    private ObjectStore Store(long spillBytes) => new(Capacity, spill: new SpillSettings(_directory, spillBytes, Background: false));

    private static async Task SettledAsync(ObjectStore store) =>
        await Bounded.Eventually(() => Task.FromResult(!store.SpillerRunning), TimeSpan.FromSeconds(20), "the background spiller settles");

    private static string[] FilesOf(ObjectStore store) => Directory.GetFiles(store.SpillPath!, "*.spill");

    /// <summary>The store holds no byte in memory or on disk, and its spill directory no file.</summary>
    private static void AssertNothingLeft(ObjectStore store)
    {
        Assert.Equal(0, store.UsedBytes);
        Assert.Equal(0, store.SpilledBytes);
        Assert.Empty(FilesOf(store));
    }

    internal static byte[] Payload(int seed, int size = ObjectBytes)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static StoredBytes Reserve(ObjectStore store, int seed, int size = ObjectBytes)
    {
        var bytes = store.Reserve(size);
        using (store.Arena.Access())
        {
            Payload(seed, size).CopyTo(bytes.Writable(0, size));
        }

        return bytes;
    }

    /// <summary>A committed object, as CommitPut leaves it: written, then sealed with its id and checksum.</summary>
    private static (StoredBytes Bytes, ObjectId Id) Put(ObjectStore store, int seed, int size = ObjectBytes)
    {
        var bytes = Reserve(store, seed, size);
        var id = ObjectId.NewId();
        bytes.MarkSealed(id, Crc32.HashToUInt32(Payload(seed, size)));
        return (bytes, id);
    }

    /// <summary>Reads as a get does: pin, copy inside an arena access, unpin.</summary>
    private static byte[] Read(ObjectStore store, StoredBytes bytes)
    {
        Assert.True(bytes.TryPin());
        try
        {
            using (store.Arena.Access())
            {
                return bytes.AsMemory().ToArray();
            }
        }
        finally
        {
            bytes.Unpin();
        }
    }
}
