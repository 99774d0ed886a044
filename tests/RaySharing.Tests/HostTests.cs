using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using RaySharing.Worker.Host;
using Xunit;

namespace RaySharing.Tests;

/// <summary>The worker host as users run it: its command line, exit codes, signals and logging, in a real process.</summary>
public sealed class HostTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private const int SIGINT = 2;
    private const int SIGTERM = 15;
    private const int SIGKILL = 9;

    private static ChildProcess Host(params string[] args) => BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", args);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task Sigkill_WorkerWithSameHostClient_NoArenaFileLeftAndALeaseStaysReadable()
    {
        using var host = Host("--port", "0");
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        var client = await TestWorker.ConnectAsync(address);
        await using var disposeClient = client.DisposedWithin();
        Assert.True(client.UsesSharedMemory);
        var data = new byte[4 << 20];
        new Random(4).NextBytes(data);
        var lease = await client.GetLeaseAsync(await client.PutEncodedAsync(data).Within()).Within();
        Assert.True(lease.IsZeroCopy);
        // The arena's file is unlinked as soon as the worker maps it: there is never one to leave behind.
        Assert.Empty(Directory.GetFiles("/dev/shm", $"raysharing-{host.Id}-*"));

        Assert.Equal(0, Kill(host.Id, SIGKILL));
        await host.WaitForExitCodeAsync(ProcessTimeout);

        // The mapping outlives the worker: a lease taken before reads the same bytes.
        Assert.Equal(data, lease.Memory.ToArray());
        lease.Dispose();
        Assert.Empty(Directory.GetFiles("/dev/shm", $"raysharing-{host.Id}-*"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public async Task Signals_SeveralInQuickSuccession_OneGracefulStopAndExitZero(int signals)
    {
        using var host = Host("--port", "0");
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        var client = await TestWorker.ConnectAsync(address);
        for (var i = 0; i < 20; i++)
        {
            await client.PutAsync(new byte[1000]).Within();
        }

        // TERM and INT mixed, a few milliseconds apart, as coreutils timeout (TERM twice) or an impatient Ctrl+C
        // sends them: the later ones land while the first one's graceful stop is under way.
        Assert.Equal(0, Kill(host.Id, SIGTERM));
        for (var i = 1; i < signals && !host.HasExited; i++)
        {
            await Task.Delay(5);
            Kill(host.Id, i % 2 == 0 ? SIGTERM : SIGINT);
        }

        Assert.Equal(0, await host.WaitForExitCodeAsync(TimeSpan.FromSeconds(20)));
        // Quiet by default: no log line for the puts, and nothing unhandled during the stop.
        Assert.Equal(string.Empty, host.StderrTail);
        var ex = await Assert.ThrowsAnyAsync<RaySharingException>(() => client.GetStoreStatsAsync().Within());
        Assert.IsNotType<RaySharingTimeoutException>(ex);
        await client.DisposeAsync().Within();
    }

    [Fact]
    public async Task Help_ListsEveryOptionWithItsDefault_ExitsZero()
    {
        using var host = Host("--help");

        Assert.Equal(0, await host.WaitForExitCodeAsync(ProcessTimeout));
        var optionLines = host.Lines.Where(l => l.TrimStart().StartsWith("--", StringComparison.Ordinal)).ToList();
        var settable = typeof(WorkerOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Count(p => p.CanWrite);
        // Every worker option, plus --log-level and --version.
        Assert.Equal(settable + 2, optionLines.Count);
        Assert.All(optionLines.Where(l => !l.TrimStart().StartsWith("--version", StringComparison.Ordinal)), l => Assert.Contains("[default: ", l, StringComparison.Ordinal));
        Assert.Contains(optionLines, l => l.Contains("--stream-idle-timeout-ms", StringComparison.Ordinal) && l.Contains("[default: 30000]", StringComparison.Ordinal));
        Assert.Contains(optionLines, l => l.Contains("--log-level", StringComparison.Ordinal) && l.Contains("[default: Warning]", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--port", "--port", "abc")]
    [InlineData("--port", "--port", "70000")]
    [InlineData("--capacity-mb", "--capacity-mb", "17592186044417")]
    [InlineData("--capacity-mb", "--capacity-mb", "0")]
    [InlineData("--capacity-mb", "--capacity-mb", "abc")]
    [InlineData("--capacity-mb", "--capacity-mb", "1.5")]
    [InlineData("--capacity-mb", "--capacity-mb", "-5")]
    [InlineData("--lease-ms", "--lease-ms", "99999999999")]
    [InlineData("--lease-check-ms", "--lease-check-ms", "500")]
    [InlineData("--max-message-bytes", "--max-message-bytes", "1048576")]
    [InlineData("--max-unary-object-bytes", "--max-unary-object-bytes", "67108864")]
    [InlineData("--listen", "--listen", "localhost")]
    [InlineData("--log-level", "--log-level", "verbose")]
    [InlineData("--bogus", "--bogus")]
    [InlineData("--spill-capacity-mb", "--spill-capacity-mb", "-1")]
    [InlineData("--shared-memory", "--shared-memory", "maybe")]
    [InlineData("--channel-port", "--channel-port", "abc")]
    [InlineData("--cluster", "--cluster", "a b")]
    [InlineData("--cluster", "--port", "0", "--cluster", "spark")]
    [InlineData("--cluster-lease-ms", "--port", "0", "--cluster-lease-ms", "4000")]
    [InlineData("--cluster", "--redis", "127.0.0.1:6379", "--cluster", "{x}")]
    [InlineData("--cluster-lease-ms", "--cluster-lease-ms", "500")]
    [InlineData("--redis", "--redis", " ")]
    [InlineData("--spill-dir", "--port", "0", "--spill-capacity-mb", "1", "--spill-dir", "spill")]
    [InlineData("--spill-dir", "--port", "0", "--spill-capacity-mb", "1", "--spill-dir", "/proc/version/spill")]
    public async Task BadArgument_PrintsOneLineNamingIt_ExitsTwo(string named, params string[] args)
    {
        using var host = Host(args);

        Assert.Equal(2, await host.WaitForExitCodeAsync(ProcessTimeout));
        Assert.Empty(host.Lines);
        var error = host.StderrTail;
        Assert.DoesNotContain('\n', error);
        Assert.StartsWith("raysharing-worker: ", error, StringComparison.Ordinal);
        Assert.Contains(named, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PortInUse_PrintsOneLineNamingTheAddress_ExitsThree()
    {
        await using var worker = await TestWorker.StartAsync();
        var port = new Uri(worker.Address).Port.ToString(CultureInfo.InvariantCulture);
        using var host = Host("--port", port);

        Assert.Equal(3, await host.WaitForExitCodeAsync(ProcessTimeout));
        var error = host.StderrTail;
        Assert.DoesNotContain('\n', error);
        Assert.Contains($"127.0.0.1:{port}", error, StringComparison.Ordinal);
        // The worker that holds the port is unharmed.
        var client = await worker.ConnectAsync();
        Assert.NotNull(await client.PutAsync("still here").Within());
    }

    [Fact]
    public async Task ChannelPortInUse_PrintsOneLineNamingTheChannel_ExitsThree()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
        using var host = Host("--port", "0", "--channel-port", port);

        Assert.Equal(3, await host.WaitForExitCodeAsync(ProcessTimeout));
        var error = host.StderrTail;
        Assert.DoesNotContain('\n', error);
        Assert.Contains($"127.0.0.1:{port}", error, StringComparison.Ordinal);
        Assert.Contains("--channel-port", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChannelSocketDirectoryMissing_PrintsOneLineNamingTheSocket_ExitsThree()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"raysharing-missing-{Guid.NewGuid():N}");
        using var host = Host("--port", "0", "--channel-socket-dir", missing);

        Assert.Equal(3, await host.WaitForExitCodeAsync(ProcessTimeout));
        var error = host.StderrTail;
        Assert.DoesNotContain('\n', error);
        Assert.Contains(missing, error, StringComparison.Ordinal);
        Assert.Contains("--channel-socket-dir", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LogLevelInformation_LogsToStderr_ListeningLineStaysOnStdout()
    {
        using var host = Host("--port", "0", "--log-level", "Information");
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        Assert.Single(host.Lines);
        Assert.Equal(0, Kill(host.Id, SIGTERM));

        Assert.Equal(0, await host.WaitForExitCodeAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains($"listening on {address}", host.StderrTail, StringComparison.Ordinal);
        Assert.Single(host.Lines);
    }

    [Fact]
    public async Task CapacityOption_SmallStore_PutBeyondItIsRefusedAsStoreFull()
    {
        using var host = Host("--port", "0", "--capacity-mb", "1");
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        await using var client = await TestWorker.ConnectAsync(address);

        await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutAsync(new byte[(1 << 20) + 1]).Within());
        Assert.NotNull(await client.PutAsync(new byte[1000]).Within());
        Assert.Equal(1L << 20, (await client.GetStoreStatsAsync().Within()).CapacityBytes);
    }

    [Theory]
    [InlineData("--shared-memory", "maybe", "true or false")]
    [InlineData("--channel", "yes", "true or false")]
    [InlineData("--channel-port", "abc", "a whole number")]
    [InlineData("--port", "1.5", "a whole number")]
    [InlineData("--capacity-mb", "ten", "a whole number")]
    [InlineData("--spill-capacity-mb", "1e3", "a whole number")]
    [InlineData("--lease-ms", "10s", "a whole number")]
    [InlineData("--tombstone-capacity", "many", "a whole number")]
    public void CommandLine_ValueOfTheWrongKind_OneErrorInTheFlagsTerms(string flag, string value, string takes)
    {
        var parsed = new WorkerCommandLine().Parse([flag, value]);

        var error = Assert.Single(parsed.Errors).Message;
        Assert.Equal($"{flag} takes {takes}; got '{value}'.", error);
    }

    [Fact]
    public void CommandLine_BoolFlags_TakeTrueOrFalseInAnyCase()
    {
        var commandLine = new WorkerCommandLine();
        var parsed = commandLine.Parse(["--shared-memory", "FALSE", "--channel", "True"]);

        Assert.Empty(parsed.Errors);
        var options = commandLine.ToOptions(parsed);
        Assert.False(options.SharedMemory);
        Assert.True(options.Channel);
        Assert.True(commandLine.ToOptions(commandLine.Parse([])).SharedMemory);
    }

    [Fact]
    public void CommandLine_EveryFlagGiven_SetsEveryWorkerOption()
    {
        var commandLine = new WorkerCommandLine();
        var parsed = commandLine.Parse([
            "--listen", "0.0.0.0", "--port", "9000", "--advertise", "http://10.0.0.5:9000", "--capacity-mb", "2048",
            "--lease-ms", "20000", "--min-lease-ms", "300", "--max-lease-ms", "600000", "--lease-check-ms", "250",
            "--stream-idle-timeout-ms", "45000", "--max-unary-object-bytes", "2000000", "--stream-chunk-bytes", "65536",
            "--max-message-bytes", "8388608", "--tombstone-capacity", "7", "--shared-memory", "false", "--shared-memory-dir", "/mnt/huge",
            "--channel", "false", "--channel-port", "9001", "--channel-socket-dir", "/run/raysharing",
            "--spill-dir", "/var/spill", "--spill-capacity-mb", "512",
            "--redis", "redis-host:6380", "--cluster", "spark-7", "--cluster-lease-ms", "4000",
        ]);
        Assert.Empty(parsed.Errors);

        var options = commandLine.ToOptions(parsed);

        var expected = new WorkerOptions
        {
            ListenAddress = "0.0.0.0", Port = 9000, AdvertisedAddress = "http://10.0.0.5:9000", StoreCapacityBytes = 2048L << 20,
            DefaultLease = TimeSpan.FromSeconds(20), MinLease = TimeSpan.FromMilliseconds(300), MaxLease = TimeSpan.FromMinutes(10),
            LeaseCheckInterval = TimeSpan.FromMilliseconds(250), StreamIdleTimeout = TimeSpan.FromSeconds(45),
            MaxUnaryObjectBytes = 2_000_000, StreamChunkBytes = 65536, MaxMessageBytes = 8 << 20, TombstoneCapacity = 7, SharedMemory = false, SharedMemoryDirectory = "/mnt/huge",
            Channel = false, ChannelPort = 9001, ChannelSocketDirectory = "/run/raysharing",
            SpillDirectory = "/var/spill", SpillCapacityBytes = 512L << 20,
            Redis = "redis-host:6380", ClusterName = "spark-7", ClusterLease = TimeSpan.FromSeconds(4),
        };
        var defaults = new WorkerOptions();
        foreach (var property in typeof(WorkerOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            // A new option without a flag fails here: the expectation above sets every option away from its default.
            Assert.NotEqual(property.GetValue(defaults), property.GetValue(expected));
            Assert.Equal(property.GetValue(expected), property.GetValue(options));
        }

        options.Validate();
    }
}
