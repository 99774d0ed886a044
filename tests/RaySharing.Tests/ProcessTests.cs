using System.IO.Hashing;
using RaySharing.Wire;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>Sessions in real, separate OS processes: puts that outlive their process, refs that travel as bytes.</summary>
public sealed class ProcessTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The lease the peer processes take (the worker's default); the tests' own sessions take longer ones.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    private static ChildProcess Peer(params string[] args) => BuildOutputs.Start("tests/RaySharing.TestPeer", "RaySharing.TestPeer", args);

    private static (byte[] Envelope, uint Checksum) ParseReady(string line)
    {
        var parts = line.Split(' ');
        return (Convert.FromHexString(parts[1]), Convert.ToUInt32(parts[2], 16));
    }

    [Fact]
    public async Task PutterKilledWithSigkill_HolderOwnedRegisteredObject_OtherSessionStillGetsIt()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var driver = await worker.ConnectAsync();
        var holder = await driver.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        using var executor = Peer("put", "--address", worker.Address, "--holder", "DUMMY_HOLDER", "--key", "job", "--size", "300000", "--hang");
        var (_, checksum) = ParseReady(await executor.WaitForLineAsync("READY", ProcessTimeout));
        Assert.Equal(2, (await driver.GetWorkerStatsAsync().Within()).Sessions);

        executor.Kill();
        // The killed process never closed its session: move the worker's clock past its lease until the worker ends it.
        await worker.AdvanceUntilAsync(Lease, async () => (await driver.GetWorkerStatsAsync()).Sessions == 1, "the killed session ends");

        var fetched = (await holder.FetchAsync<byte[]>("job").Within()).Single();
        var bytes = await driver.GetAsync(fetched).Within();
        Assert.Equal(300_000, bytes.Length);
        Assert.Equal(checksum, Crc32.HashToUInt32(bytes));
    }

    [Fact]
    public async Task PutterKilledWithSigkill_SessionOwnedObject_DiesWhenItsLeaseLapses()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var observer = await worker.ConnectAsync();
        using var putter = Peer("put", "--address", worker.Address, "--size", "5000", "--hang");
        var (envelope, _) = ParseReady(await putter.WaitForLineAsync("READY", ProcessTimeout));
        var borrowed = await observer.BorrowFromEnvelopeAsync<byte[]>(envelope).Within();
        Assert.Equal(5000, (await observer.GetAsync(borrowed).Within()).Length);

        putter.Kill();
        await worker.AdvanceUntilAsync(Lease, async () =>
        {
            try
            {
                await observer.GetAsync(borrowed);
                return false;
            }
            catch (OwnerDiedException ex)
            {
                Assert.Equal(borrowed.Owner.HolderIncarnation, ex.Incarnation);
                return true;
            }
        }, "the killed session's object dies");

        Assert.Equal(0, (await observer.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task CreatorKilledWithSigkill_SessionLifetimeHolder_DiesWithItsObjectsWhenItsLeaseLapses()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var observer = await worker.ConnectAsync();
        using var creator = Peer("put", "--address", worker.Address, "--holder", "EPHEMERAL", "--session-holder", "--key", "k", "--size", "4000", "--hang");
        var (envelope, _) = ParseReady(await creator.WaitForLineAsync("READY", ProcessTimeout));
        var holder = await observer.GetHolderAsync("EPHEMERAL").Within();
        var fetched = (await holder.FetchAsync<byte[]>("k").Within()).Single();
        Assert.Equal(HolderLifetime.Session, holder.Lifetime);

        creator.Kill();
        await worker.AdvanceUntilAsync(Lease, async () =>
        {
            try
            {
                await observer.GetAsync(fetched);
                return false;
            }
            catch (OwnerDiedException ex)
            {
                Assert.Equal(holder.Incarnation, ex.Incarnation);
                Assert.Equal("EPHEMERAL", ex.HolderName);
                return true;
            }
        }, "the killed creator's holder dies");

        await Assert.ThrowsAsync<HolderNotFoundException>(() => observer.GetHolderAsync("EPHEMERAL").Within());
        await Assert.ThrowsAsync<OwnerDiedException>(() => observer.BorrowFromEnvelopeAsync(envelope).Within());
        Assert.Equal(0, (await observer.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task BorrowerKilledWithSigkill_ItsBorrowDropsWhenItsLeaseLapsesAndTheObjectIsFreed()
    {
        await using var worker = await TestWorker.StartAsync(o => o.DefaultLease = Lease);
        var owner = await worker.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        var objectRef = await owner.PutAsync(new byte[3000], holder).Within();
        using var borrower = Peer("borrow", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes()));
        await borrower.WaitForLineAsync("BORROWED", ProcessTimeout);
        await objectRef.DisposeAsync().Within();
        Assert.Equal(1, (await owner.GetStoreStatsAsync().Within()).Objects);

        borrower.Kill();

        await worker.AdvanceUntilAsync(Lease, async () => (await owner.GetStoreStatsAsync()).Objects == 0, "the killed borrower's borrow drops");
        Assert.Equal(0, (await owner.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task WorkerHost_Sigterm_StopsGracefully()
    {
        using var host = BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", "--port", "0");
        var address = (await host.WaitForLineAsync("listening", ProcessTimeout)).Split(' ')[1];
        var client = await TestWorker.ConnectAsync(address);
        await using var disposeClient = client.DisposedWithin();
        Assert.NotNull(await client.PutAsync("x").Within());

        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", host.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync().Within();
        }

        Assert.Equal(0, await host.WaitForExitCodeAsync(TimeSpan.FromSeconds(15)));
        // The process is gone, so its port refuses connections: a typed, immediate failure, never the bound.
        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => client.GetStoreStatsAsync().Within(TimeSpan.FromSeconds(15)));
        Assert.Equal(address, ex.Address);
    }

    [Fact]
    public async Task Envelope_MadeInAnotherProcess_RebuiltHereGetsTheData()
    {
        await using var worker = await TestWorker.StartAsync();
        var driver = await worker.ConnectAsync();
        await driver.GetOrCreateHolderAsync("H").Within();
        using var executor = Peer("put", "--address", worker.Address, "--holder", "H", "--key", "k", "--size", "2000000");
        var (envelope, checksum) = ParseReady(await executor.WaitForLineAsync("READY", ProcessTimeout));
        Assert.Equal(0, await executor.WaitForExitCodeAsync(ProcessTimeout));

        var rebuilt = await driver.BorrowFromEnvelopeAsync<byte[]>(envelope).Within();
        var bytes = await driver.GetAsync(rebuilt).Within();

        Assert.Equal(checksum, Crc32.HashToUInt32(bytes));
        Assert.Equal(OwnerKind.Holder, rebuilt.Owner.Kind);
        Assert.Equal("H", rebuilt.Owner.Name);
    }

    [Fact]
    public async Task Envelope_MadeHere_RebuiltInAnotherProcessGetsTheData()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var data = new byte[70_000];
        new Random(7).NextBytes(data);
        var objectRef = await executor.PutAsync(data, holder).Within();

        using var driver = Peer("get", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes()));
        var line = await driver.WaitForLineAsync("GOT", ProcessTimeout);

        Assert.Equal($"GOT 70000 {Crc32.HashToUInt32(data):x8}", line);
        Assert.Equal(0, await driver.WaitForExitCodeAsync(ProcessTimeout));
    }

    [Fact]
    public async Task Envelope_OfKilledHolder_OtherProcessGetsTypedOwnerDied()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var objectRef = await executor.PutAsync(new byte[10], holder).Within();
        await holder.KillAsync().Within();

        using var driver = Peer("get", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes()));
        var ex = await Assert.ThrowsAsync<ChildFailedException>(() => driver.WaitForLineAsync("GOT", ProcessTimeout));

        Assert.Contains("ERROR OwnerDiedException", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, await driver.WaitForExitCodeAsync(ProcessTimeout));
    }

    [Fact]
    public async Task Sample_ExecutorsToDriver_DriverVerifiesEveryPartition()
    {
        using var sample = BuildOutputs.Start("samples/ExecutorsToDriver", "ExecutorsToDriver", "run", "--executors", "3");

        var exitCode = await sample.WaitForExitCodeAsync(TimeSpan.FromSeconds(120));

        Assert.True(exitCode == 0, sample.Describe());
        Assert.Contains("driver: verified 3/3 partitions", sample.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sample_ExecutorsToDriver_DriverKilled_MasterPrintsFailedAndExitsOne()
    {
        // Large partitions keep the driver busy for far longer than the kill takes to land after the
        // master names the driver's process.
        using var sample = BuildOutputs.Start("samples/ExecutorsToDriver", "ExecutorsToDriver", "run", "--executors", "4", "--rows", "999999");
        var started = await sample.WaitForLineAsync("master: driver is process ", TimeSpan.FromSeconds(120));
        using (var driver = System.Diagnostics.Process.GetProcessById(int.Parse(started.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture)))
        {
            driver.Kill();
        }

        var exitCode = await sample.WaitForExitCodeAsync(ProcessTimeout);

        Assert.True(exitCode == 1, sample.Describe());
        Assert.DoesNotContain("driver: verified", sample.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("master: FAILED: the driver did not verify the job (exit 137, killed by signal 9)", sample.StderrTail, StringComparison.Ordinal);
        // The master still cleaned up after the failed run.
        Assert.Contains("master: unregistered job", sample.StandardOutput, StringComparison.Ordinal);
    }
}
