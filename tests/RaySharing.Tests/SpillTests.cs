using System.Collections.Concurrent;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Spilling seen from clients of a real worker: puts past memory succeed and every get returns the right bytes,
/// STORE_FULL once memory and the spill limit are both used, leased objects stay put, released objects leave no
/// file, a damaged file is a typed error, and the worker's directory goes with it.
/// </summary>
public sealed class SpillTests : IDisposable
{
    private const int ObjectBytes = 256 << 10;
    private const long Capacity = 4L << 20;

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"spill-worker-tests-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Put_MoreThanMemory_EveryGetReturnsItsBytes(bool sharedMemory)
    {
        await using var worker = await StartAsync(spillBytes: 32L << 20);
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);

        var refs = new List<ObjectRef>();
        for (var i = 0; i < 40; i++)
        {
            refs.Add(await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within());
        }

        Assert.True((await client.GetStoreStatsAsync().Within()).UsedBytes <= Capacity);
        await Bounded.Eventually(() => Task.FromResult(File.Exists(SpillFile(refs[0]))), TimeSpan.FromSeconds(20), "the oldest object spills");
        for (var i = 0; i < refs.Count; i++)
        {
            Assert.Equal(SpillStoreTests.Payload(i), await client.GetBytesAsync(refs[i]).Within());
        }

        // Every byte is somewhere: in memory, or in a spill file, and the stats say how much of each (once no
        // spill is midway, when an object's bytes are counted in neither or both).
        await Bounded.Eventually(async () =>
        {
            var stats = await client.GetStoreStatsAsync();
            return stats.UsedBytes + stats.SpilledBytes == 40L * ObjectBytes && stats.SpilledBytes > 0;
        }, TimeSpan.FromSeconds(20), "memory and spill files hold the 40 objects between them");
        var settled = await client.GetStoreStatsAsync().Within();
        Assert.True(settled.UsedBytes <= Capacity);
        Assert.Equal((32L << 20, 40L), (settled.SpillCapacityBytes, settled.Objects));
        await client.ReleaseAsync(refs).Within();
        await Bounded.Eventually(async () =>
        {
            var stats = await client.GetStoreStatsAsync();
            return (stats.UsedBytes, stats.SpilledBytes, stats.Objects) == (0L, 0L, 0L);
        }, TimeSpan.FromSeconds(20), "nothing left in memory or spill files once every ref is released");
    }

    [Fact]
    public async Task Put_MemoryAndSpillLimitFull_ObjectStoreFullNamingBothAndGetsStillWork()
    {
        await using var worker = await StartAsync(spillBytes: 1L << 20);
        var client = await worker.ConnectAsync();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 20; i++)
        {
            refs.Add(await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within());
        }

        var ex = await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutEncodedAsync(SpillStoreTests.Payload(99)).Within());

        Assert.Contains($"of {Capacity} bytes are in memory", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{1L << 20} of the {1L << 20} bytes the spill files may hold are used", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.IsTransient);
        Assert.Equal(SpillStoreTests.Payload(19), await client.GetBytesAsync(refs[19]).Within());
        // Released objects make room again, in memory and on disk.
        await client.ReleaseAsync(refs.Take(10)).Within();
        Assert.NotNull(await client.PutEncodedAsync(SpillStoreTests.Payload(99)).Within());
    }

    [Fact]
    public async Task Lease_SameHost_LeasedObjectNeverSpillsAndSpillsOnceDisposed()
    {
        await using var worker = await StartAsync(spillBytes: 32L << 20);
        var client = await worker.ConnectAsync();
        var data = SpillStoreTests.Payload(7);
        var leased = await client.PutEncodedAsync(data).Within();
        var lease = await client.GetLeaseAsync(leased).Within();
        Assert.True(lease.IsZeroCopy);

        for (var i = 0; i < 40; i++)
        {
            await client.PutEncodedAsync(SpillStoreTests.Payload(100 + i)).Within();
            Assert.False(File.Exists(SpillFile(leased)));
        }

        // Its range was never reused: the worker's copy, read in place, is still the object.
        Assert.Equal(data, lease.Memory.ToArray());
        await lease.DisposeAsync().Within();
        var seed = 200;
        await Bounded.Eventually(async () =>
        {
            await client.PutEncodedAsync(SpillStoreTests.Payload(seed++)).Within();
            return File.Exists(SpillFile(leased));
        }, TimeSpan.FromSeconds(20), "the object spills once its lease is gone");
        Assert.Equal(data, await client.GetBytesAsync(leased).Within());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Get_SpilledAndMemoryAllLeased_ObjectStoreFullUntilALeaseEnds(bool sharedMemory)
    {
        await using var worker = await StartAsync(spillBytes: 32L << 20);
        var leaser = await worker.ConnectAsync();
        var getter = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var spilled = await getter.PutEncodedAsync(SpillStoreTests.Payload(0)).Within();
        var leases = new List<ObjectLease>();
        for (var i = 1; i <= 16; i++)
        {
            leases.Add(await leaser.GetLeaseAsync(await leaser.PutEncodedAsync(SpillStoreTests.Payload(i)).Within()).Within());
        }

        Assert.True(File.Exists(SpillFile(spilled)));

        var ex = await Assert.ThrowsAsync<ObjectStoreFullException>(() => getter.GetBytesAsync(spilled).Within());

        Assert.Contains(spilled.Id.ToString(), ex.Message, StringComparison.Ordinal);
        Assert.Contains("no room to bring it back", ex.Message, StringComparison.Ordinal);
        await leases[0].DisposeAsync().Within();
        Assert.Equal(SpillStoreTests.Payload(0), await getter.GetBytesAsync(spilled).Within());

        // No file check here: back in memory it is the one unpinned object in a full arena, so the background
        // spiller may rightly move it out again at once (that a restore deletes its file is SpillStoreTests'
        // TryPin_RestoredObject_FileDeletedAndSpillBytesBack). A second get must still find it, wherever it is.
        Assert.Equal(SpillStoreTests.Payload(0), await getter.GetBytesAsync(spilled).Within());
        foreach (var (lease, i) in leases.Select((l, i) => (l, i + 1)).Skip(1))
        {
            Assert.Equal(SpillStoreTests.Payload(i), lease.Memory.ToArray());
            await lease.DisposeAsync().Within();
        }
    }

    [Fact]
    public async Task Release_SpilledObject_ItsFileIsDeleted()
    {
        await using var worker = await StartAsync(spillBytes: 32L << 20);
        var client = await worker.ConnectAsync();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 30; i++)
        {
            refs.Add(await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within());
        }

        var spilled = refs.Where(r => File.Exists(SpillFile(r))).ToList();
        Assert.NotEmpty(spilled);

        await client.ReleaseAsync(refs).Within();

        Assert.All(spilled, r => Assert.False(File.Exists(SpillFile(r))));
        Assert.Empty(Directory.GetFiles(WorkerDirectory(), "*.spill"));
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Get_SpillFileDamaged_ObjectLostAndTheClientStillWorks(bool sharedMemory)
    {
        await using var worker = await StartAsync(spillBytes: 32L << 20);
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 20; i++)
        {
            refs.Add(await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within());
        }

        var file = SpillFile(refs[0]);
        await Bounded.Eventually(() => Task.FromResult(File.Exists(file)), TimeSpan.FromSeconds(20), "the oldest object spills");
        var damaged = File.ReadAllBytes(file);
        damaged[12345] ^= 0x01;
        File.WriteAllBytes(file, damaged);

        var ex = await Assert.ThrowsAsync<ObjectLostException>(() => client.GetBytesAsync(refs[0]).Within());

        Assert.Equal(refs[0].Id, ex.ObjectId);
        Assert.Contains("checksum", ex.Message, StringComparison.Ordinal);
        Assert.False(ex.IsTransient);
        Assert.Equal(SpillStoreTests.Payload(1), await client.GetBytesAsync(refs[1]).Within());
        await client.ReleaseAsync([refs[0]]).Within();
        Assert.False(File.Exists(file));
    }

    [Fact]
    public async Task PutsAndGets_ConcurrentUnderSpillPressure_EveryGetIntact()
    {
        const int Putters = 4;
        const int PutsEach = 600;
        const int Size = 4000;
        await using var worker = await StartAsync(spillBytes: 64L << 20, capacity: 1L << 20);
        var clients = new[] { await worker.ConnectAsync(o => o.UseSharedMemory = false), await worker.ConnectAsync() };
        var refs = new ConcurrentDictionary<int, ObjectRef>();
        var failures = new ConcurrentQueue<string>();

        var tasks = Enumerable.Range(0, Putters).Select(p => Task.Run(async () =>
        {
            var client = clients[p % clients.Length];
            var random = new Random(p);
            for (var i = 0; i < PutsEach; i++)
            {
                var seed = p * PutsEach + i;
                refs[seed] = await client.PutEncodedAsync(SpillStoreTests.Payload(seed, Size)).ConfigureAwait(false);
                var pick = random.Next(seed + 1);
                if (refs.TryGetValue(pick, out var other) && !(await client.GetBytesAsync(other).ConfigureAwait(false)).AsSpan().SequenceEqual(SpillStoreTests.Payload(pick, Size)))
                {
                    failures.Enqueue($"object {pick} read back wrong");
                }
            }
        })).ToArray();

        await Task.WhenAll(tasks).Within(TimeSpan.FromSeconds(120));

        Assert.Empty(failures);
        Assert.NotEmpty(Directory.GetFiles(WorkerDirectory(), "*.spill"));
        foreach (var (seed, objectRef) in refs.Where(r => r.Key % 7 == 0))
        {
            Assert.Equal(SpillStoreTests.Payload(seed, Size), await clients[0].GetBytesAsync(objectRef).Within());
        }
    }

    [Fact]
    public async Task Stop_RemovesTheWorkersSpillDirectory_AndAStartRemovesThoseOfDeadWorkers()
    {
        var worker = await StartAsync(spillBytes: 32L << 20);
        var client = await worker.ConnectAsync();
        for (var i = 0; i < 24; i++)
        {
            await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within();
        }

        var own = WorkerDirectory();
        Assert.NotEmpty(Directory.GetFiles(own, "*.spill"));
        await worker.DisposeAsync().Within();
        Assert.False(Directory.Exists(own));

        // A worker killed with its files: its lock file is left, held by nobody.
        var dead = Directory.CreateDirectory(Path.Combine(_root, "raysharing-spill-1-0000000000000000")).FullName;
        File.WriteAllText(Path.Combine(dead, "lock"), "");
        File.WriteAllBytes(Path.Combine(dead, $"{ObjectId.NewId()}.spill"), new byte[1000]);
        await using var restarted = await StartAsync(spillBytes: 32L << 20);

        Assert.False(Directory.Exists(dead));
        Assert.Single(Directory.GetDirectories(_root));
    }

    [Fact]
    public async Task Start_SpillDirectoryNotWritable_FailsNamingTheOption()
    {
        Directory.CreateDirectory(_root);
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "not a directory");

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => TestWorker.StartAsync(o =>
        {
            o.SpillDirectory = Path.Combine(file, "spill");
            o.SpillCapacityBytes = 8L << 20;
        }));

        var argument = Assert.IsType<ArgumentException>(ex.GetBaseException() as ArgumentException ?? ex);
        Assert.Equal(nameof(WorkerOptions.SpillDirectory), argument.ParamName);
        Assert.Contains(Path.Combine(file, "spill"), argument.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(nameof(WorkerOptions.SpillCapacityBytes), "/var/tmp", -1L)]
    [InlineData(nameof(WorkerOptions.SpillDirectory), "spill", 1L << 20)]
    [InlineData(nameof(WorkerOptions.SpillDirectory), " ", 1L << 20)]
    public void Validate_SpillOptionOutOfRange_ThrowsNamingIt(string option, string directory, long capacity)
    {
        var ex = Assert.Throws<ArgumentException>(() => new WorkerOptions { SpillDirectory = directory, SpillCapacityBytes = capacity }.Validate());

        Assert.Equal(option, ex.ParamName);
        Assert.StartsWith(option, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_SpillingOffByDefault_NoDirectoryAndStoreFullAtCapacity()
    {
        await using var worker = await TestWorker.StartAsync(o =>
        {
            o.StoreCapacityBytes = Capacity;
            o.SpillDirectory = _root;
        });
        var client = await worker.ConnectAsync();
        for (var i = 0; i < 16; i++)
        {
            await client.PutEncodedAsync(SpillStoreTests.Payload(i)).Within();
        }

        var ex = await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutEncodedAsync(SpillStoreTests.Payload(16)).Within());

        Assert.DoesNotContain("spill", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_root));
        var stats = await client.GetStoreStatsAsync().Within();
        Assert.Equal((0L, 0L, 16L), (stats.SpilledBytes, stats.SpillCapacityBytes, stats.Objects));
    }

    private Task<TestWorker> StartAsync(long spillBytes, long capacity = Capacity) => TestWorker.StartAsync(o =>
    {
        o.StoreCapacityBytes = capacity;
        o.SpillDirectory = _root;
        o.SpillCapacityBytes = spillBytes;
    });

    private string WorkerDirectory() => Assert.Single(Directory.GetDirectories(_root, "raysharing-spill-*"));

    private string SpillFile(ObjectRef objectRef) => Path.Combine(WorkerDirectory(), $"{objectRef.Id}.spill");
}
