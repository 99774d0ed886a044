using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// The network-hosts fixture: hosts that really are apart (each its own network namespace) reach each other and
/// this process over the bridge, a cut link really cuts, and nothing is left behind.
/// </summary>
public sealed class NetworkHostsTests
{
    private const int RedisPort = 6379;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [NetworkHostsFact]
    public async Task Create_TwoHosts_ReachEachOtherOverTcp()
    {
        using var hosts = NetworkHosts.Create(2);
        var (a, b) = (hosts.Hosts[0], hosts.Hosts[1]);
        await StartRedisAsync(a);
        await StartRedisAsync(b);

        // Each answers the other at its own address: the only way there is the veth links and the bridge.
        Assert.Equal("PONG", (await RedisCliAsync(b, a, "ping").Within(Bound)).StandardOutput.Trim());
        Assert.Equal("PONG", (await RedisCliAsync(a, b, "ping").Within(Bound)).StandardOutput.Trim());
        Assert.NotEqual(a.Address, b.Address);
        Assert.NotEqual(a.Name, b.Name);
    }

    [NetworkHostsFact]
    public async Task Create_RootNamespace_ReachesHostsFromTheBridgeAddress()
    {
        using var hosts = NetworkHosts.Create(2);
        foreach (var host in hosts.Hosts)
        {
            await StartRedisAsync(host);
            // CLIENT INFO names the address the server saw this connection come from.
            var info = await InlineCommandAsync(host.Address, "CLIENT INFO").Within(Bound);
            Assert.Contains($"addr={hosts.BridgeAddress}:", info, StringComparison.Ordinal);
        }
    }

    [NetworkHostsFact]
    public async Task CutLink_HostA_OtherHostAndRootFailUntilRestoreLink()
    {
        using var hosts = NetworkHosts.Create(2);
        var (a, b) = (hosts.Hosts[0], hosts.Hosts[1]);
        var server = await StartRedisAsync(a);

        a.CutLink();
        Assert.True(a.IsLinkCut);
        // `timeout` bounds the attempt: a SYN into a cut link may be retried for minutes before connect gives up.
        var cut = await b.RunAsync("timeout", ["3", "redis-cli", "-h", a.Address.ToString(), "-p", RedisPort.ToString(CultureInfo.InvariantCulture), "ping"], TimeSpan.FromSeconds(10)).Within(Bound);
        Assert.False(cut.Succeeded, cut.ToString());
        Assert.DoesNotContain("PONG", cut.StandardOutput, StringComparison.Ordinal);
        var fromRoot = await Record.ExceptionAsync(() => InlineCommandAsync(a.Address, "PING", TimeSpan.FromSeconds(2))).Within(Bound);
        Assert.True(fromRoot is OperationCanceledException or SocketException, $"the root namespace reached a cut host: {fromRoot}");
        Assert.False(server.HasExited, "cutting the link must leave the host's processes running: " + server.Describe());

        a.RestoreLink();
        Assert.False(a.IsLinkCut);
        await Bounded.Eventually(
            async () => (await RedisCliAsync(b, a, "ping", mustSucceed: false)).StandardOutput.Trim() == "PONG",
            Bound, "host B reaches host A again after RestoreLink");
        Assert.Equal("+PONG", await InlineCommandAsync(a.Address, "PING").Within(Bound));
    }

    [NetworkHostsFact]
    public async Task Dispose_AfterUse_LeavesNoNamespaceInterfaceOrProcess()
    {
        using var hosts = NetworkHosts.Create(2);
        string[] names = [.. hosts.Hosts.Select(h => h.Name), hosts.BridgeName];
        var startedPid = hosts.Hosts[0].StartProgram("sleep", "sleep", "300").Id;
        // One process the fixture did not start: Dispose finds it by its namespace.
        using var stranger = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", hosts.Hosts[1].Name, "sleep", "300"]) { UseShellExecute = false })!;
        await Bounded.Eventually(
            async () => (await RunIpAsync("netns", "pids", hosts.Hosts[1].Name)).Contains(stranger.Id.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal),
            Bound, "the stranger process runs in host 1");

        hosts.Dispose();

        Assert.Empty(hosts.CleanupProblems);
        var namespaces = await RunIpAsync("netns", "list").Within(Bound);
        var links = await RunIpAsync("-o", "link", "show").Within(Bound);
        Assert.All(names, name => Assert.DoesNotContain(name, namespaces, StringComparison.Ordinal));
        Assert.All(names, name => Assert.DoesNotContain(name, links, StringComparison.Ordinal));
        await Bounded.Eventually(() => Task.FromResult(IsGone(startedPid)), Bound, "the process the fixture started is gone");
        await stranger.WaitForExitAsync().Within(Bound);
        Assert.Throws<ObjectDisposedException>(() => hosts.Hosts[0].StartProgram("sleep", "sleep", "1"));
        hosts.Dispose();
    }

    [NetworkHostsFact]
    public async Task CutLink_LinkDeletedByHand_ThrowsQuotingCommandAndStderrAndDisposeStillCleans()
    {
        using var hosts = NetworkHosts.Create(2);
        var a = hosts.Hosts[0];
        await RunIpAsync("link", "del", a.Name).Within(Bound);

        var error = Assert.Throws<IpCommandException>(a.CutLink);
        Assert.Equal($"ip link set {a.Name} down", error.Command);
        Assert.Contains("Cannot find device", error.StandardError, StringComparison.Ordinal);
        Assert.Contains(error.Command, error.Message, StringComparison.Ordinal);
        Assert.Contains(error.StandardError, error.Message, StringComparison.Ordinal);

        // Half gone (a link and a namespace removed behind its back) is what a failed creation leaves too.
        await RunIpAsync("netns", "del", a.Name).Within(Bound);
        hosts.Dispose();
        Assert.Empty(hosts.CleanupProblems);
        var links = await RunIpAsync("-o", "link", "show").Within(Bound);
        Assert.DoesNotContain(hosts.Hosts[1].Name, links, StringComparison.Ordinal);
        Assert.DoesNotContain(hosts.BridgeName, links, StringComparison.Ordinal);
    }

    [NetworkHostsFact]
    public async Task Create_LeftoversOfAProcessThatIsGone_AreRemovedAndLiveOnesKept()
    {
        var deadPid = await ExitedPidAsync();
        var (deadSpace, deadBridge) = ($"rs{deadPid}x7h0", $"rs{deadPid}x7br");
        var liveBridge = $"rs{Environment.ProcessId}xkeep";
        try
        {
            await RunIpAsync("netns", "add", deadSpace).Within(Bound);
            await RunIpAsync("link", "add", deadBridge, "type", "bridge").Within(Bound);
            await RunIpAsync("link", "add", liveBridge, "type", "bridge").Within(Bound);

            using (NetworkHosts.Create(1))
            {
                Assert.DoesNotContain(deadSpace, await RunIpAsync("netns", "list").Within(Bound), StringComparison.Ordinal);
                var links = await RunIpAsync("-o", "link", "show").Within(Bound);
                Assert.DoesNotContain(deadBridge, links, StringComparison.Ordinal);
                Assert.Contains(liveBridge, links, StringComparison.Ordinal);
            }
        }
        finally
        {
            await RunIpAsync(mustSucceed: false, "link", "del", liveBridge).Within(Bound);
            await RunIpAsync(mustSucceed: false, "link", "del", deadBridge).Within(Bound);
            await RunIpAsync(mustSucceed: false, "netns", "del", deadSpace).Within(Bound);
        }
    }

    [NetworkHostsFact]
    public async Task StartAssembly_WorkerHost_ServesOnTheHostsAddress()
    {
        using var hosts = NetworkHosts.Create(1);
        var host = hosts.Hosts[0];
        // Binding the host's address works only inside its namespace: the root namespace has no such address.
        var worker = host.StartAssembly("worker", BuildOutputs.AssemblyPath("src/RaySharing.Worker.Host", "RaySharing.Worker.Host"),
            "--listen", host.Address.ToString(), "--port", "7480", "--shared-memory", "false", "--channel", "false", "--capacity-mb", "16");
        var address = (await worker.WaitForLineAsync("listening ", TimeSpan.FromSeconds(60)).Within(TimeSpan.FromSeconds(70)))["listening ".Length..].Trim();
        Assert.Equal($"http://{host.Address}:7480", address.TrimEnd('/'));

        var client = await TestWorker.ConnectAsync(address, o => o.UseSharedMemory = false);
        await using var disposeClient = client.DisposedWithin();
        var data = Encoding.UTF8.GetBytes("across the bridge");
        var stored = await client.PutEncodedAsync(data).Within(Bound);
        Assert.Equal(data, await client.GetBytesAsync(stored).Within(Bound));
    }

    /// <summary>Starts redis-server inside <paramref name="host"/> on its address, and waits until the root namespace gets PONG.</summary>
    internal static async Task<ChildProcess> StartRedisAsync(NetworkHost host)
    {
        var program = await RedisProcess.ProgramPathAsync().Within(TimeSpan.FromMinutes(5));
        var server = host.StartProgram("redis-server", program,
            "--port", RedisPort.ToString(CultureInfo.InvariantCulture), "--bind", host.Address.ToString(),
            "--save", string.Empty, "--appendonly", "no", "--protected-mode", "no");
        await Bounded.Eventually(
            async () =>
            {
                Assert.False(server.HasExited, server.Describe());
                try
                {
                    return await InlineCommandAsync(host.Address, "PING", TimeSpan.FromSeconds(2)) == "+PONG";
                }
                catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
                {
                    return false;
                }
            },
            Bound, $"redis-server in {host} answers PING");
        return server;
    }

    /// <summary><c>redis-cli -h target command</c> run inside <paramref name="from"/>.</summary>
    private static async Task<CommandResult> RedisCliAsync(NetworkHost from, NetworkHost target, string command, bool mustSucceed = true)
    {
        var result = await from.RunAsync("timeout", ["5", "redis-cli", "-h", target.Address.ToString(), "-p", RedisPort.ToString(CultureInfo.InvariantCulture), command], TimeSpan.FromSeconds(10)).Within(Bound);
        Assert.True(!mustSucceed || result.Succeeded, result.ToString());
        return result;
    }

    /// <summary>Sends one Redis inline command from this process (the root namespace) and returns the reply, bulk string bodies included.</summary>
    private static async Task<string> InlineCommandAsync(IPAddress address, string command, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(address, RedisPort), cancel.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(command + "\r\n"), SocketFlags.None, cancel.Token);
        var reply = new StringBuilder();
        var buffer = new byte[4096];
        // A status reply is one line; a bulk reply ($<length>) is a line and a body: read until both have come.
        while (!IsComplete(reply.ToString()))
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token);
            if (read == 0)
            {
                throw new IOException($"{address} closed the connection before answering {command}: {reply}");
            }

            reply.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        return reply.ToString().TrimEnd('\r', '\n');

        static bool IsComplete(string text)
        {
            var firstLine = text.IndexOf("\r\n", StringComparison.Ordinal);
            if (firstLine < 0)
            {
                return false;
            }

            return text[0] != '$' || Encoding.UTF8.GetByteCount(text) >= firstLine + 2 + int.Parse(text.AsSpan(1, firstLine - 1), CultureInfo.InvariantCulture) + 2;
        }
    }

    /// <summary>Runs <c>ip</c> from this process, apart from the fixture, to see what it made; fails the test when ip fails.</summary>
    internal static Task<string> RunIpAsync(params string[] arguments) => RunIpAsync(mustSucceed: true, arguments);

    private static async Task<string> RunIpAsync(bool mustSucceed, params string[] arguments)
    {
        var start = new ProcessStartInfo("ip", arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var ip = Process.Start(start)!;
        var output = ip.StandardOutput.ReadToEndAsync();
        var errors = ip.StandardError.ReadToEndAsync();
        await ip.WaitForExitAsync().Within(Bound);
        Assert.True(!mustSucceed || ip.ExitCode == 0, $"ip {string.Join(' ', arguments)}: {await errors}");
        return await output;
    }

    /// <summary>True when no process has <paramref name="pid"/>, or only a zombie waiting to be reaped.</summary>
    private static bool IsGone(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    /// <summary>The pid of a process that has exited: one no live fixture can carry in its names.</summary>
    private static async Task<int> ExitedPidAsync()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await process.WaitForExitAsync().Within(Bound);
        Assert.False(Directory.Exists($"/proc/{process.Id}"), "the pid of an exited process still has a /proc entry");
        return process.Id;
    }
}
