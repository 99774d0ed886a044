using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// The seed scenario across languages, every side its own process, on a worker run as its own process: executors in
/// one language put partitions owned by a holder, a driver in another fetches them by key and checks every byte.
/// Refs cross as envelope bytes, never as ids.
/// </summary>
[Collection(nameof(OtherLanguagesCollection))]
public sealed class CrossLanguageTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);
    private const int SIGKILL = 9;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task DotNetExecutorProcesses_PythonDriverFetchesByKeyAndVerifiesEveryPartition()
    {
        await using var worker = await WorkerProcess.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("dotnet-to-python").Within();

        // Small (unary), over the shared-memory threshold, and streamed past the unary limit.
        int[] sizes = [1000, 200_000, 3 << 20];
        var executors = sizes.Select((size, i) => BuildOutputs.Start("tests/RaySharing.TestPeer", "RaySharing.TestPeer",
            "put", "--address", worker.Address, "--holder", "dotnet-to-python", "--key", "partitions", "--size", size.ToString(CultureInfo.InvariantCulture))).ToList();
        var put = new List<(int Size, string Crc)>();
        for (var i = 0; i < executors.Count; i++)
        {
            var ready = (await executors[i].WaitForLineAsync("READY ", ProcessTimeout)).Split(' ');
            put.Add((sizes[i], ready[2]));
            Assert.Equal(0, await executors[i].WaitForExitCodeAsync(ProcessTimeout));
            executors[i].Dispose();
        }

        using var driver = PythonPeers.StartPeer("python-driver", "driver", "--address", worker.Address, "--holder", "dotnet-to-python", "--key", "partitions");
        Assert.Equal(0, await driver.WaitForExitCodeAsync(ProcessTimeout));
        Assert.Equal($"PARTS {sizes.Length}", driver.Lines[^1]);
        var got = driver.Lines.Where(l => l.StartsWith("PART ", StringComparison.Ordinal)).Select(l => l.Split(' '))
            .Select(f => (Size: int.Parse(f[2], CultureInfo.InvariantCulture), Crc: f[3], Codec: f[4])).ToList();
        // Executors register concurrently: the list's order is theirs, its contents must be exactly what they put.
        Assert.Equal(put.OrderBy(p => p.Crc), got.Select(g => (g.Size, g.Crc)).OrderBy(p => p.Crc));
        Assert.All(got, g => Assert.Equal("RAW", g.Codec));
        await holder.KillAsync().Within();
    }

    [Fact]
    public async Task PythonExecutorProcesses_DotNetDriverGetsEveryByte()
    {
        await using var worker = await WorkerProcess.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("python-to-dotnet").Within();

        (int Seed, int Size, int Partitions)[] plans = [(1, 100, 4), (2, 70_000, 3), (3, (1 << 20) + 1, 2)];
        var executors = plans.Select(p => PythonPeers.StartPeer($"python-executor-{p.Seed}", "executor", "--address", worker.Address, "--holder", "python-to-dotnet",
            "--key", $"exec-{p.Seed}", "--partitions", p.Partitions.ToString(CultureInfo.InvariantCulture), "--size", p.Size.ToString(CultureInfo.InvariantCulture),
            "--seed", p.Seed.ToString(CultureInfo.InvariantCulture))).ToList();
        foreach (var executor in executors)
        {
            Assert.True(await executor.WaitForExitCodeAsync(ProcessTimeout) == 0, executor.Describe());
            Assert.StartsWith("DONE ", executor.Lines[^1]);
            executor.Dispose();
        }

        // The executors' sessions are gone; the holder owns every partition.
        foreach (var (seed, size, partitions) in plans)
        {
            var refs = await holder.FetchAsync($"exec-{seed}").Within();
            Assert.Equal(partitions, refs.Count);
            for (var i = 0; i < refs.Count; i++)
            {
                Assert.Equal(Pattern(seed, i, size), await client.GetBytesAsync(refs[i]).Within());
                await refs[i].DisposeAsync().Within();
            }
        }

        await holder.KillAsync().Within();
    }

    [Fact]
    public async Task JavaExecutorProcesses_PythonDriverGetsEveryPartition_TheSeedScenario()
    {
        await using var worker = await WorkerProcess.StartAsync();
        // The Python driver makes the holder; JVM executors put their partitions with it as owner and register them.
        var holderLine = await PythonLinesAsync("holder", "--address", worker.Address, "--holder", "spark-job");
        Assert.StartsWith("HOLDER ", holderLine[0]);

        (int Seed, int Size, int Partitions)[] plans = [(11, 4096, 6), (12, 200_000, 3), (13, 3 << 20, 2)];
        var executors = plans.Select(p => JavaClient.Start($"java-executor-{p.Seed}", "raysharing.Executor", "--address", worker.Address, "--holder", "spark-job",
            "--key", $"stage-1/executor-{p.Seed}", "--partitions", p.Partitions.ToString(CultureInfo.InvariantCulture),
            "--size", p.Size.ToString(CultureInfo.InvariantCulture), "--seed", p.Seed.ToString(CultureInfo.InvariantCulture))).ToList();
        var put = new List<string[]>();
        foreach (var executor in executors)
        {
            Assert.True(await executor.WaitForExitCodeAsync(ProcessTimeout) == 0, executor.Describe());
            put.Add([.. executor.Lines.Where(l => l.StartsWith("PUT ", StringComparison.Ordinal)).Select(l => l[4..])]);
            executor.Dispose();
        }

        // The JVMs are gone; the Python driver fetches each executor's key and checks every byte of every partition.
        foreach (var ((seed, size, partitions), lines) in plans.Zip(put))
        {
            var got = await PythonLinesAsync("driver", "--address", worker.Address, "--holder", "spark-job", "--key", $"stage-1/executor-{seed}",
                "--seed", seed.ToString(CultureInfo.InvariantCulture));
            Assert.Equal($"PARTS {partitions}", got[^1]);
            Assert.Equal(lines, got.Where(l => l.StartsWith("PART ", StringComparison.Ordinal)).Select(l => l["PART ".Length..^" RAW".Length]));
            Assert.All(lines, l => Assert.Equal(size.ToString(CultureInfo.InvariantCulture), l.Split(' ')[1]));
        }
    }

    [Fact]
    public async Task Envelopes_MadeInOneLanguage_AreBorrowedAndResolvedInAnother()
    {
        await using var worker = await WorkerProcess.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("envelopes").Within();

        // .NET to Python: RAW bytes of every transport size, and an XLANG value.
        foreach (var size in new[] { 0, 5000, 2 << 20 })
        {
            var data = Pattern(9, 0, size);
            await using var objectRef = await client.PutAsync(data, holder).Within();
            var got = await PythonLinesAsync("borrow-get", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes()));
            Assert.Equal($"GOT {size} {Crc32.HashToUInt32(data):x8} RAW", got[0]);
        }

        var value = new Dictionary<string, object> { ["name"] = "partition é", ["rows"] = new[] { 1, 2, 3 } };
        await using (var valueRef = await client.PutAsync(value, holder).Within())
        {
            var got = await PythonLinesAsync("borrow-get", "--address", worker.Address, "--envelope", Convert.ToHexString(valueRef.ToEnvelopeBytes()));
            Assert.EndsWith(" XLANG", got[0]);
            Assert.Equal("VALUE {\"name\": \"partition \\u00e9\", \"rows\": [1, 2, 3]}", got[1]);
        }

        // Python to .NET: a RAW put and an XLANG value, registered (the Python process exits) and borrowed from the
        // envelope bytes it printed.
        var raw = (await PythonLinesAsync("put", "--address", worker.Address, "--holder", "envelopes", "--key", "from-python", "--size", "300000", "--seed", "5"))[0].Split(' ');
        await using (var rawRef = await client.BorrowFromEnvelopeAsync(Convert.FromHexString(raw[1])).Within())
        {
            Assert.Equal(Pattern(5, 0, 300_000), await client.GetBytesAsync(rawRef).Within());
            Assert.Equal(raw[2], rawRef.Checksum.ToString("x8", CultureInfo.InvariantCulture));
            Assert.Equal("envelopes", rawRef.Owner.Name);
        }

        var xlang = (await PythonLinesAsync("put", "--address", worker.Address, "--holder", "envelopes", "--key", "from-python", "--value", "{\"rows\": [4, 5], \"who\": \"python\"}"))[0].Split(' ');
        await using (var xlangRef = await client.BorrowFromEnvelopeAsync<Dictionary<string, object>>(Convert.FromHexString(xlang[1])).Within())
        {
            var decoded = await client.GetAsync(xlangRef).Within();
            Assert.Equal("python", decoded["who"]);
            Assert.Equal([4L, 5L], ((object[])decoded["rows"]).Select(Convert.ToInt64));
        }

        await holder.KillAsync().Within();
    }

    [Fact]
    public async Task PythonGetOfAKilledHoldersRef_FailsOwnerDiedInUnderASecond()
    {
        await using var worker = await WorkerProcess.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("killed").Within();
        var small = await client.PutAsync(new byte[100], holder).Within();
        var large = await client.PutAsync(Pattern(1, 0, 4 << 20), holder).Within();
        await holder.KillAsync().Within();

        foreach (var objectRef in new ObjectRef[] { small, large })
        {
            var line = (await PythonLinesAsync("timed-get", "--address", worker.Address, "--envelope", Convert.ToHexString(objectRef.ToEnvelopeBytes())))[0].Split(' ');
            Assert.Equal(["FAILED", "OwnerDiedError", "OWNER_DIED"], line[..3]);
            Assert.True(int.Parse(line[3], CultureInfo.InvariantCulture) < 1000, $"The Python get took {line[3]} ms to fail OWNER_DIED.");
        }
    }

    [Fact]
    public async Task PythonSessionsKilledWithSigkill_LoseNothingTheirHolderOwns()
    {
        await using var worker = await WorkerProcess.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("survivor").Within();
        var executors = Enumerable.Range(1, 2).Select(seed => PythonPeers.StartPeer($"python-forever-{seed}", "executor", "--address", worker.Address,
            "--holder", "survivor", "--key", $"forever-{seed}", "--size", seed == 1 ? "2000" : "150000", "--seed", seed.ToString(CultureInfo.InvariantCulture),
            "--forever", "--lease", "0.5")).ToList();
        foreach (var executor in executors)
        {
            await executor.WaitForLineAsync("REGISTERED 5 ", ProcessTimeout);
        }

        // Killed mid-loop: each may be between a put and its register, or holding an unacknowledged register.
        foreach (var executor in executors)
        {
            Assert.Equal(0, Kill(executor.Id, SIGKILL));
            await executor.WaitForExitAsync(ProcessTimeout, CancellationToken.None);
        }

        // Their sessions lapse (0.5 s leases); their borrows go with them, the holder's registrations stay.
        await Bounded.Eventually(async () => (await client.GetWorkerStatsAsync().Within()).Sessions == 1, TimeSpan.FromSeconds(15), "the killed Python sessions end");
        var registered = 0;
        foreach (var (executor, seed) in executors.Select((e, i) => (e, i + 1)))
        {
            var acknowledged = executor.Lines.Count(l => l.StartsWith("REGISTERED ", StringComparison.Ordinal));
            var refs = await holder.FetchAsync($"forever-{seed}").Within();
            // A register the holder applied but whose reply the killed process never printed is one more, never one fewer.
            Assert.InRange(refs.Count, acknowledged, acknowledged + 1);
            var size = seed == 1 ? 2000 : 150_000;
            for (var i = 0; i < refs.Count; i++)
            {
                Assert.Equal(Pattern(seed, i, size), await client.GetBytesAsync(refs[i]).Within());
                await refs[i].DisposeAsync().Within();
            }

            registered += refs.Count;
            executor.Dispose();
        }

        // Nothing leaked either: a partition put but never registered was freed with its putter's borrow.
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync().Within()).Objects == registered, TimeSpan.FromSeconds(10), "only the registered partitions remain");
        await holder.KillAsync().Within();
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    /// <summary>Byte j of partition i is (seed + 131 i + j) mod 251: what every language's test executor puts.</summary>
    internal static byte[] Pattern(int seed, int index, int size)
    {
        var data = new byte[size];
        var start = (seed + (131 * index)) % 251;
        for (var j = 0; j < size; j++)
        {
            data[j] = (byte)((start + j) % 251);
        }

        return data;
    }

    private static async Task<IReadOnlyList<string>> PythonLinesAsync(string mode, params string[] arguments)
    {
        using var peer = PythonPeers.StartPeer($"python-{mode}", mode, arguments);
        var exitCode = await peer.WaitForExitCodeAsync(ProcessTimeout);
        Assert.True(exitCode == 0, $"python peer.py {mode} failed: {peer.Describe()}");
        return peer.Lines;
    }
}
