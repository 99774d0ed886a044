using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// The seed scenario across languages: Java executors (clients/java, raysharing.Executor, each its own JVM) put partitions
/// owned by a holder a .NET driver created, register them and exit; the driver fetches them by key and checks every byte.
/// The worker is the host program in its own process, as users run it.
/// </summary>
[Collection(nameof(OtherLanguagesCollection))]
public sealed class JavaExecutorTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private static ChildProcess Host() => BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", "--port", "0");

    private static async Task<string> AddressOfAsync(ChildProcess host) =>
        (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];

    private static ChildProcess Executor(string name, params string[] arguments) => JavaClient.Start(name, "raysharing.Executor", arguments);

    /// <summary>Byte j of partition i is (seed + 131*i + j) % 251, as the executor writes it.</summary>
    private static byte[] Partition(long seed, long index, int size)
    {
        var data = new byte[size];
        for (var j = 0; j < size; j++)
        {
            data[j] = (byte)((seed + 131 * index + j) % 251);
        }

        return data;
    }

    [Fact]
    public async Task ThreeExecutors_PutHolderOwnedPartitionsAndExit_DriverFetchesEveryByte()
    {
        using var host = Host();
        var address = await AddressOfAsync(host);
        var driver = await TestWorker.ConnectAsync(address);
        await using var disposeDriver = driver.DisposedWithin();
        var holder = await driver.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();

        // (key, partitions, size, seed, first index): small unary puts, 3 MiB puts over the unary limit (PutStream with
        // its handshake), and puts of exactly the 1 MiB limit (still unary).
        (string Key, int Partitions, int Size, long Seed, long First)[] runs =
        [
            ("job/0", 5, 65_536, 11, 0),
            ("job/1", 2, 3 << 20, 12, 5),
            ("job/2", 3, 1 << 20, 13, 7),
        ];
        var executors = runs.Select((r, i) => Executor($"executor-{i}", "--address", address, "--holder", "DUMMY_HOLDER",
            "--key", r.Key, "--partitions", r.Partitions.ToString(CultureInfo.InvariantCulture), "--size", r.Size.ToString(CultureInfo.InvariantCulture),
            "--seed", r.Seed.ToString(CultureInfo.InvariantCulture), "--first-index", r.First.ToString(CultureInfo.InvariantCulture))).ToList();
        try
        {
            for (var i = 0; i < executors.Count; i++)
            {
                Assert.True(await executors[i].WaitForExitCodeAsync(ProcessTimeout) == 0, executors[i].Describe());
            }

            // The executors are gone and closed their sessions; the holder owns what they put.
            Assert.Equal(1, (await driver.GetWorkerStatsAsync().Within()).Sessions);
            for (var i = 0; i < runs.Length; i++)
            {
                var run = runs[i];
                var puts = executors[i].Lines.Where(l => l.StartsWith("PUT ", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToList();
                Assert.Equal($"DONE {run.Partitions}", executors[i].Lines[^1]);
                Assert.Equal(run.Partitions, puts.Count);

                var refs = await holder.FetchAsync(run.Key).Within();
                Assert.Equal(run.Partitions, refs.Count);
                for (var n = 0; n < refs.Count; n++)
                {
                    var index = run.First + n;
                    Assert.Equal(index.ToString(CultureInfo.InvariantCulture), puts[n][1]);
                    Assert.Equal(uint.Parse(puts[n][3], NumberStyles.HexNumber, CultureInfo.InvariantCulture), refs[n].Checksum);
                    Assert.Equal(ObjectCodec.Raw, refs[n].Codec);
                    Assert.Equal("DUMMY_HOLDER", refs[n].Owner.Name);
                    Assert.Equal(holder.Incarnation.ToString(), refs[n].Owner.Incarnation.ToString());
                    var bytes = await driver.GetBytesAsync(refs[n]).Within();
                    Assert.True(Partition(run.Seed, index, run.Size).AsSpan().SequenceEqual(bytes), $"{run.Key}[{n}] (partition {index}) differs from the formula");
                }
            }
        }
        finally
        {
            executors.ForEach(e => e.Dispose());
        }
    }

    [Fact]
    public async Task Executor_HolderDoesNotExist_PrintsHolderNotFoundAndExitsOne()
    {
        using var host = Host();
        var address = await AddressOfAsync(host);
        using var executor = Executor("executor", "--address", address, "--holder", "NO_SUCH_HOLDER", "--key", "job",
            "--partitions", "2", "--size", "100", "--seed", "1");

        Assert.Equal(1, await executor.WaitForExitCodeAsync(ProcessTimeout));
        var error = Assert.Single(executor.Lines);
        Assert.StartsWith("ERROR HOLDER_NOT_FOUND ", error, StringComparison.Ordinal);
        Assert.Contains("NO_SUCH_HOLDER", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Executor_HolderKilledMidRun_PrintsOwnerDiedAndExitsOne()
    {
        using var host = Host();
        var address = await AddressOfAsync(host);
        var driver = await TestWorker.ConnectAsync(address);
        await using var disposeDriver = driver.DisposedWithin();
        var holder = await driver.GetOrCreateHolderAsync("DOOMED").Within();
        // Far more puts than the kill takes to land: the register after them is pinned to the holder's incarnation, so
        // the run fails with OWNER_DIED whichever put the kill overtakes.
        using var executor = Executor("executor", "--address", address, "--holder", "DOOMED", "--key", "job",
            "--partitions", "20000", "--size", "1000", "--seed", "3");
        await executor.WaitForLineAsync("PUT 0 ", ProcessTimeout);

        await holder.KillAsync().Within();

        Assert.Equal(1, await executor.WaitForExitCodeAsync(ProcessTimeout));
        Assert.DoesNotContain(executor.Lines, l => l.StartsWith("DONE", StringComparison.Ordinal));
        var error = executor.Lines[^1];
        Assert.StartsWith("ERROR OWNER_DIED ", error, StringComparison.Ordinal);
        Assert.Contains("DOOMED", error, StringComparison.Ordinal);
        // The driver's session is unharmed, and nothing the executor put outlived the holder.
        await Bounded.Eventually(async () => (await driver.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "the dead holder's objects are freed");
    }

    [Fact]
    public async Task Executor_WorkerKilledMidRun_PrintsUnavailableAndExitsOneWithinItsCallTimeout()
    {
        using var host = Host();
        var address = await AddressOfAsync(host);
        var driver = await TestWorker.ConnectAsync(address);
        await using var disposeDriver = driver.DisposedWithin();
        await driver.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        using var executor = Executor("executor", "--address", address, "--holder", "DUMMY_HOLDER", "--key", "job",
            "--partitions", "20000", "--size", "1000", "--seed", "4", "--call-timeout-ms", "5000");
        await executor.WaitForLineAsync("PUT 0 ", ProcessTimeout);

        var clock = Stopwatch.StartNew();
        host.Kill();

        Assert.Equal(1, await executor.WaitForExitCodeAsync(ProcessTimeout));
        Assert.StartsWith("ERROR UNAVAILABLE ", executor.Lines[^1], StringComparison.Ordinal);
        // A lost connection fails the call at once; the call timeout bounds it anyway (plus the JVM's exit).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Executor_NothingListensAtTheAddress_PrintsUnavailableAndExitsOne()
    {
        // A port that was free a moment ago: nothing listens there.
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();

        var clock = Stopwatch.StartNew();
        using var executor = Executor("executor", "--address", $"http://127.0.0.1:{port}", "--holder", "DUMMY_HOLDER", "--key", "job",
            "--partitions", "1", "--size", "10", "--seed", "5", "--call-timeout-ms", "5000");

        Assert.Equal(1, await executor.WaitForExitCodeAsync(ProcessTimeout));
        var error = Assert.Single(executor.Lines);
        Assert.StartsWith("ERROR UNAVAILABLE ", error, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", error, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Theory]
    [InlineData("--partitions", "x", "ERROR USAGE --partitions takes a whole number; got 'x'")]
    [InlineData("--key", "", "ERROR USAGE --holder and --key must not be empty")]
    [InlineData("--size", "-1", "ERROR USAGE --partitions, --size and --first-index are not negative")]
    [InlineData("--colour", "red", "ERROR USAGE unknown option --colour")]
    public async Task Executor_BadCommandLine_PrintsUsageAndExitsTwoBeforeAnyCall(string option, string value, string expected)
    {
        Dictionary<string, string> arguments = new()
        {
            ["--address"] = "http://127.0.0.1:1", ["--holder"] = "DUMMY_HOLDER", ["--key"] = "job", ["--partitions"] = "1", ["--size"] = "10", ["--seed"] = "5",
        };
        arguments[option] = value;
        using var executor = Executor("executor", [.. arguments.SelectMany(a => new[] { a.Key, a.Value })]);

        Assert.Equal(2, await executor.WaitForExitCodeAsync(ProcessTimeout));
        Assert.Equal(expected, executor.Lines[0]);
        Assert.StartsWith("usage: Executor ", executor.Lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Executor_Help_PrintsUsageAndExitsZero()
    {
        using var executor = Executor("executor", "--help");
        Assert.Equal(0, await executor.WaitForExitCodeAsync(ProcessTimeout));
        Assert.StartsWith("usage: Executor --address ", Assert.Single(executor.Lines), StringComparison.Ordinal);
    }
}
