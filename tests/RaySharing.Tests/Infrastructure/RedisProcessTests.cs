using System.Globalization;
using System.Net.Sockets;
using Xunit;

namespace RaySharing.Tests.Infrastructure;

/// <summary>The test's own redis-server: killed, paused and restarted empty on the same port, here and inside a network host.</summary>
public sealed class RedisProcessTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StartBound = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task KillAsync_ThenRestartAsync_SameAddressEmpty()
    {
        var redis = await RedisProcess.StartAsync().Within(StartBound);
        await using var dispose = redis.DisposedWithin();
        Assert.Equal("+OK", await redis.CommandAsync(Bound, "SET", "key", "value").Within(Bound));
        Assert.Equal(":1", await redis.CommandAsync(Bound, "EXISTS", "key").Within(Bound));
        var (firstPid, port) = (redis.Pid, redis.Port);

        await redis.KillAsync().Within(Bound);
        Assert.True(redis.Process.HasExited);
        await Assert.ThrowsAsync<SocketException>(() => redis.CommandAsync(Bound, "PING")).Within(Bound);

        await redis.RestartAsync().Within(StartBound);
        Assert.NotEqual(firstPid, redis.Pid);
        Assert.Equal(port, redis.Port);
        Assert.Equal($"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}", redis.ConnectionString);
        // No persistence: what the killed server held is gone, as after a real crash.
        Assert.Equal(":0", await redis.CommandAsync(Bound, "EXISTS", "key").Within(Bound));
    }

    [Fact]
    public async Task Pause_CommandsHangUntilResume()
    {
        var redis = await RedisProcess.StartAsync().Within(StartBound);
        await using var dispose = redis.DisposedWithin();

        redis.Pause();
        // The kernel still accepts the connection; nothing answers, as with a server that hangs.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => redis.CommandAsync(TimeSpan.FromSeconds(1), "PING")).Within(Bound);

        redis.Resume();
        Assert.Equal("+PONG", await redis.CommandAsync(Bound, "PING").Within(Bound));
    }

    [NetworkHostsFact]
    public async Task StartAsync_InsideNetworkHost_ReachableFromOtherHostAndRootNamespaceAlsoAfterRestart()
    {
        using var hosts = NetworkHosts.Create(2);
        var (a, b) = (hosts.Hosts[0], hosts.Hosts[1]);
        var redis = await RedisProcess.StartAsync(a.Address.ToString(), 6379, a.StartProgram).Within(StartBound);
        await using var dispose = redis.DisposedWithin();
        await AssertRunsInAsync(a, redis.Pid);

        // Written from the root namespace, read from host B: one server, reached both ways.
        Assert.Equal("+OK", await redis.CommandAsync(Bound, "SET", "key", "from-root").Within(Bound));
        Assert.Equal("from-root", await GetFromAsync(b, redis, "key").Within(Bound));

        // A restart goes through the same start delegate: the new server is inside host A too.
        await redis.RestartAsync().Within(StartBound);
        await AssertRunsInAsync(a, redis.Pid);
        Assert.Equal(string.Empty, await GetFromAsync(b, redis, "key").Within(Bound));
        Assert.Equal("+PONG", await redis.CommandAsync(Bound, "PING").Within(Bound));
    }

    private static async Task<string> GetFromAsync(NetworkHost host, RedisProcess redis, string key)
    {
        var result = await host.RunAsync("redis-cli", ["-h", redis.Host, "-p", redis.Port.ToString(CultureInfo.InvariantCulture), "GET", key], TimeSpan.FromSeconds(10)).Within(Bound);
        Assert.True(result.Succeeded, result.ToString());
        return result.StandardOutput.Trim();
    }

    private static async Task AssertRunsInAsync(NetworkHost host, int pid)
    {
        var pids = await NetworkHostsTests.RunIpAsync("netns", "pids", host.Name).Within(Bound);
        Assert.Contains(pid.ToString(CultureInfo.InvariantCulture), pids.Split('\n', StringSplitOptions.TrimEntries));
    }
}
