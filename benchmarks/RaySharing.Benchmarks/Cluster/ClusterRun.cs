using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using Grpc.Net.Client;
using RaySharing.Benchmarks.DataPlane;
using RaySharing.Benchmarks.V1;
using RaySharing.Testing;

namespace RaySharing.Benchmarks.Cluster;

/// <summary>
/// The cluster benchmark (<c>--cluster</c>): three hosts as network namespaces joined by veth links (root needed),
/// redis-server on the third, and on each a server process of this program (<see cref="Serve"/>) whose worker joins
/// one cluster, with the bare gRPC echo and the raw TCP listener beside it. This process measures from the root
/// namespace, through the bridge: a call to the first host's worker about a holder on the second host crosses two
/// links, as a call from one machine to another's holder would. Baselines in the same run: a bare gRPC unary echo
/// and a raw TCP transfer to the second host.
/// </summary>
internal static class ClusterRun
{
    public const string Flag = "--cluster";

    private const int Calls = 2000;
    private const int WarmUp = 200;
    private const int Rounds = 10;
    private const int Holders = 1000;
    private const long TransferBytes = 64L << 20;
    private const int TransferRepetitions = 5;

    public static async Task<int> RunAsync(string[] args)
    {
        var outPath = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault();
        if (NetworkHosts.Unavailable is { } why)
        {
            Console.Error.WriteLine($"The cluster benchmark needs hosts as network namespaces: {why}.");
            return 2;
        }

        using var run = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var lines = new List<string>();
        var started = DateTime.UtcNow;
        using var hosts = NetworkHosts.Create(3);
        await using var redis = await RedisProcess.StartAsync(hosts.Hosts[2].Address.ToString(), 6379, hosts.Hosts[2].StartProgram, Console.Error, run.Token);
        var servers = new List<(ChildProcess Process, string Address, int SocketPort)>();
        try
        {
            foreach (var host in hosts.Hosts)
            {
                servers.Add(await StartServerAsync(host, redis, run.Token));
            }

            Console.Error.WriteLine($"cluster: redis on {redis.ConnectionString}, workers {string.Join(", ", servers.Select(s => s.Address))}");
            // The measuring client runs on the near host, beside its worker, as an executor or a driver would.
            var self = Assembly.GetEntryAssembly()!.Location;
            using var measuring = hosts.Hosts[0].StartProgram("bench-client", "dotnet", self, ClientMode,
                servers[0].Address, servers[1].Address, servers[2].Address, servers[1].SocketPort.ToString(CultureInfo.InvariantCulture));
            var figures = new Dictionary<string, double>();
            while (figures.Count < ClientFigures.Length)
            {
                var line = await measuring.WaitForLineAsync(ResultPrefix + ClientFigures[figures.Count] + " ", TimeSpan.FromMinutes(5), run.Token);
                var parts = line.Split(' ');
                figures[parts[1]] = double.Parse(parts[2], CultureInfo.InvariantCulture);
                Console.Error.WriteLine($"cluster: {parts[1]} {parts[2]}");
            }

            var (echoP50, lookupP50, registerP50, fetchP50, socketGbps, getGbps, holdersPerSecond) =
                (figures["echo_us"], figures["lookup_us"], figures["register_us"], figures["fetch_us"], figures["socket_gbps"], figures["get_gbps"], figures["holders_per_s"]);
            var (remotePutP50, remoteRegisterP50, remoteGetGbps) = (figures["remote_put_us"], figures["remote_register_us"], figures["remote_get_gbps"]);

            lines.Add($"target cluster_get_64m_vs_socket {getGbps / socketGbps:0.00} >=0.8 {Verdict(getGbps / socketGbps >= 0.8)}");
            lines.Add($"target holder_lookup_vs_unary {lookupP50 / echoP50:0.00} <=2 {Verdict(lookupP50 / echoP50 <= 2)}");
            lines.Add($"target cross_worker_register_vs_unary {registerP50 / echoP50:0.00} <=2 {Verdict(registerP50 / echoP50 <= 2)}");
            lines.Add($"target cross_worker_fetch_vs_unary {fetchP50 / echoP50:0.00} <=2 {Verdict(fetchP50 / echoP50 <= 2)}");
            lines.Add($"report holders_created_per_second {holdersPerSecond:0} (1,000 get-or-creates from 32 callers spread over 3 workers)");
            lines.Add($"report put_for_far_holder_vs_unary {remotePutP50 / echoP50:0.00} (100 B, bytes stay on the near worker)");
            lines.Add($"report first_register_of_near_ref_vs_unary {remoteRegisterP50 / echoP50:0.00} (the far worker borrows it back from the near one)");
            lines.Add($"report get_of_ref_put_for_another_holder_vs_socket {remoteGetGbps / socketGbps:0.00} (64 MiB put on the far host for a holder on the third, read from the far host)");
            var table = new StringBuilder()
                .AppendLine("| measure | p50 µs or GB/s | vs baseline |")
                .AppendLine("|---|---:|---:|")
                .AppendLine(CultureInfo.InvariantCulture, $"| bare gRPC unary echo to the far host (baseline) | {echoP50:0.0} µs | 1.00 |")
                .AppendLine(CultureInfo.InvariantCulture, $"| holder lookup through the near worker (directory in Redis on host 2) | {lookupP50:0.0} µs | {lookupP50 / echoP50:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| register of one ref through the near worker to the far holder | {registerP50:0.0} µs | {registerP50 / echoP50:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| fetch of one ref through the near worker (released after the run) | {fetchP50:0.0} µs | {fetchP50 / echoP50:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| put of 100 B through the near worker for the far holder (the bytes stay near) | {remotePutP50:0.0} µs | {remotePutP50 / echoP50:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| first register of such a ref, through the near worker (the far worker borrows it back from the near one) | {remoteRegisterP50:0.0} µs | {remoteRegisterP50 / echoP50:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| raw TCP 64 MiB from the far host into a warm buffer (baseline) | {socketGbps:0.00} GB/s | 1.00 |")
                .AppendLine(CultureInfo.InvariantCulture, $"| get of a 64 MiB object stored on the far host by a client of the near worker (read from the far worker directly) | {getGbps:0.00} GB/s | {getGbps / socketGbps:0.00} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| get of a 64 MiB object put on the far host for a holder on the third, fetched and read by a client of the near worker | {remoteGetGbps:0.00} GB/s | {remoteGetGbps / socketGbps:0.00} |");
            var report = Markdown(started, table.ToString(), lines);
            foreach (var line in lines)
            {
                Console.WriteLine(line);
            }

            if (outPath is not null)
            {
                await File.WriteAllTextAsync(outPath, report, run.Token);
                Console.Error.WriteLine($"wrote {Path.GetFullPath(outPath)}");
            }

            return 0;
        }
        finally
        {
            foreach (var server in servers)
            {
                server.Process.Dispose();
            }
        }
    }

    /// <summary>The measuring side, started by the run inside the near host: prints one <c>result name value</c> line per figure.</summary>
    public const string ClientMode = "cluster-client";

    private const string ResultPrefix = "result ";

    private static readonly string[] ClientFigures = ["echo_us", "lookup_us", "register_us", "fetch_us", "remote_put_us", "remote_register_us", "socket_gbps", "get_gbps", "remote_get_gbps", "holders_per_s"];

    public static async Task<int> RunClientAsync(string[] args)
    {
        using var run = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var (near, far, third, farSocketPort) = (args[1], args[2], args[3], int.Parse(args[4], CultureInfo.InvariantCulture));
        await using var nearClient = await ConnectAsync(near);
        await using var farClient = await ConnectAsync(far);
        await using var thirdClient = await ConnectAsync(third);

        // Baselines: a bare gRPC unary echo and a raw TCP transfer, from this host to the far one.
        using var channel = GrpcChannel.ForAddress(far);
        var echo = new Echo.EchoClient(channel);
        var payload = new EchoMessage { Payload = Google.Protobuf.ByteString.CopyFrom(new byte[100]) };
        var holder = await farClient.GetOrCreateHolderAsync("bench-holder", cancellationToken: run.Token);
        var viaNear = await nearClient.GetHolderAsync("bench-holder", cancellationToken: run.Token);
        var item = await farClient.PutEncodedAsync(new byte[100], owner: holder, cancellationToken: run.Token);
        await viaNear.RegisterAsync("fetched", [item], run.Token);
        var key = 0;
        var fetchedRefs = new List<ObjectRef>();
        // Puts for the far holder through the near worker keep the bytes near; the first registration of each makes the
        // far worker borrow it back from the near one (a third hop). Each put feeds one such registration.
        var putsNear = new List<ObjectRef>();
        var next = 0;
        var latencies = await InterleavedMediansAsync(WarmUp, Calls, Rounds,
            ("echo_us", async () => await echo.EchoAsync(payload, cancellationToken: run.Token)),
            ("lookup_us", async () => await nearClient.GetHolderAsync("bench-holder", cancellationToken: run.Token)),
            ("register_us", async () => await viaNear.RegisterAsync($"k{key++}", [item], run.Token)),
            ("fetch_us", async () => fetchedRefs.AddRange(await viaNear.FetchAsync("fetched", run.Token))),
            ("remote_put_us", async () => putsNear.Add(await nearClient.PutEncodedAsync(new byte[100], owner: viaNear, cancellationToken: run.Token))),
            ("remote_register_us", async () => await viaNear.RegisterAsync($"near{next}", [putsNear[next++]], run.Token)));
        foreach (var (name, p50) in latencies)
        {
            Result(name, p50.TotalMicroseconds);
        }

        await nearClient.ReleaseAsync(fetchedRefs, run.Token);
        await nearClient.ReleaseAsync(putsNear, run.Token);

        var big = new byte[TransferBytes];
        Random.Shared.NextBytes(big);
        var stored = await farClient.PutEncodedAsync(big, owner: holder, cancellationToken: run.Token);
        var borrowed = await nearClient.BorrowFromEnvelopeAsync(stored.ToEnvelopeBytes(), run.Token);
        // The seed's way round: put on the far host for a holder on the third, fetched through the near worker, read from the far one.
        var onThird = await thirdClient.GetOrCreateHolderAsync("bench-driver-holder", cancellationToken: run.Token);
        var forThird = await farClient.GetHolderAsync("bench-driver-holder", cancellationToken: run.Token);
        await forThird.RegisterAsync("partition", [await farClient.PutEncodedAsync(big, owner: forThird, cancellationToken: run.Token)], run.Token);
        var partition = (await (await nearClient.GetHolderAsync("bench-driver-holder", cancellationToken: run.Token)).FetchAsync("partition", run.Token)).Single();
        var sink = new NativeBuffer(TransferBytes);
        await using (var socket = await FarSocket.OpenAsync(far, farSocketPort, run.Token))
        {
            var transfers = await InterleavedMediansAsync(warmUp: 1, count: TransferRepetitions, rounds: TransferRepetitions,
                ("socket_gbps", () => socket.GetAsync(run.Token)),
                ("get_gbps", async () => await nearClient.CopyToAsync(borrowed, new FixedWriter(sink), cancellationToken: run.Token)),
                ("remote_get_gbps", async () => await nearClient.CopyToAsync(partition, new FixedWriter(sink), cancellationToken: run.Token)));
            foreach (var (name, median) in transfers)
            {
                Result(name, TransferBytes / median.TotalSeconds / 1e9);
            }
        }

        await onThird.KillAsync(run.Token);
        sink.Free();

        var clients = new[] { nearClient, farClient, thirdClient };
        var clock = Stopwatch.StartNew();
        await Parallel.ForAsync(0, Holders, new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = run.Token },
            async (i, ct) => await clients[i % 3].GetOrCreateHolderAsync($"made-{i}", cancellationToken: ct));
        Result("holders_per_s", Holders / clock.Elapsed.TotalSeconds);
        // Stay until the run has read every line and stops this process.
        await Task.Delay(Timeout.Infinite, run.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        return 0;
    }

    private static void Result(string name, double value)
    {
        Console.WriteLine(FormattableString.Invariant($"{ResultPrefix}{name} {value:0.###}"));
        Console.Out.Flush();
    }

    private static string Verdict(bool pass) => pass ? "PASS" : "FAIL";

    private static async Task<(ChildProcess, string, int)> StartServerAsync(NetworkHost host, RedisProcess redis, CancellationToken cancellationToken)
    {
        var self = Assembly.GetEntryAssembly()!.Location;
        var process = host.StartProgram("bench-server", "env",
            $"{Serve.ListenVariable}={host.Address}", $"{Serve.RedisVariable}={redis.ConnectionString}", $"{Serve.ClusterVariable}=bench",
            "dotnet", self, Serve.Mode);
        var socketLine = await process.WaitForLineAsync(RawSocketServer.PortPrefix, TimeSpan.FromSeconds(60), cancellationToken);
        var listening = await process.WaitForLineAsync(Serve.ListeningPrefix, TimeSpan.FromSeconds(60), cancellationToken);
        return (process, listening[Serve.ListeningPrefix.Length..], int.Parse(socketLine[RawSocketServer.PortPrefix.Length..], CultureInfo.InvariantCulture));
    }

    private static Task<RaySharingClient> ConnectAsync(string address) =>
        RaySharingClient.ConnectAsync(new RaySharingClientOptions { Address = new Uri(address), UseSharedMemory = false });

    /// <summary>
    /// Each measure's median time over <paramref name="count"/> sequential runs, taken in <paramref name="rounds"/> interleaved rounds (a
    /// round runs each measure's share in turn), after <paramref name="warmUp"/> of each: the baseline and the figures compared with it see
    /// the same moments of a noisy machine, rather than one measure's quiet minute and another's busy one.
    /// </summary>
    private static async Task<List<(string Name, TimeSpan Median)>> InterleavedMediansAsync(int warmUp, int count, int rounds, params (string Name, Func<Task> Run)[] measures)
    {
        foreach (var (_, run) in measures)
        {
            for (var i = 0; i < warmUp; i++)
            {
                await run().ConfigureAwait(false);
            }
        }

        var times = measures.Select(_ => new List<TimeSpan>(count)).ToArray();
        for (var round = 0; round < rounds; round++)
        {
            for (var m = 0; m < measures.Length; m++)
            {
                for (var i = 0; i < count / rounds; i++)
                {
                    var start = Stopwatch.GetTimestamp();
                    await measures[m].Run().ConfigureAwait(false);
                    times[m].Add(Stopwatch.GetElapsedTime(start));
                }
            }
        }

        return [.. measures.Select((measure, m) =>
        {
            times[m].Sort();
            return (measure.Name, times[m][times[m].Count / 2]);
        })];
    }

    /// <summary>The raw TCP baseline: 64 MiB from the far host's listener into a warm buffer, on one connection.</summary>
    private sealed class FarSocket : IAsyncDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly BulkStream.BulkStreamClient _bulk;
        private readonly Socket _socket;
        private readonly NativeBuffer _buffer = new(TransferBytes);
        private readonly byte[] _header = new byte[RawSocketServer.HeaderBytes];

        private FarSocket(string farAddress)
        {
            _channel = GrpcChannel.ForAddress(farAddress);
            _bulk = new BulkStream.BulkStreamClient(_channel);
            _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            _header[0] = RawSocketServer.Get;
            BinaryPrimitives.WriteInt64LittleEndian(_header.AsSpan(1), TransferBytes);
        }

        public static async Task<FarSocket> OpenAsync(string farAddress, int farSocketPort, CancellationToken cancellationToken)
        {
            var socket = new FarSocket(farAddress);
            await socket._bulk.PrepareAsync(new PrepareRequest { SourceBytes = TransferBytes }, cancellationToken: cancellationToken);
            await socket._socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(new Uri(farAddress).Host), farSocketPort), cancellationToken);
            return socket;
        }

        public async Task GetAsync(CancellationToken cancellationToken)
        {
            await RawSocketServer.SendAllAsync(_socket, _header, cancellationToken);
            await RawSocketServer.ReceiveExactlyAsync(_socket, _buffer.Memory, cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            _socket.Dispose();
            _buffer.Free();
            await _bulk.PrepareAsync(new PrepareRequest());
            _channel.Dispose();
        }
    }

    private static string Markdown(DateTime started, string table, IReadOnlyList<string> targets) =>
        $"""
        # Cluster benchmark

        Written by the benchmark itself: `dotnet run --project benchmarks/RaySharing.Benchmarks -c Release -- --cluster --out benchmarks/CLUSTER.md`
        (as root: it makes three network namespaces joined by veth links through a bridge). Run {started:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores.

        Setup: redis-server on host 2; on each of hosts 0, 1 and 2 a server process of the benchmark whose worker joins cluster
        `bench` (shared memory and the Unix socket off: every byte crosses the links), with a bare gRPC echo and a raw TCP
        listener beside it. The "near" worker is host 0's, the "far" one host 1's, which hosts the holder and stores the objects
        put by its clients. The measuring client runs
        on the near host (a second process of this program there), beside its worker, as an executor or a driver does: a
        call through the near worker about the far holder crosses the links once, as does the bare echo to the far host
        it is compared with. Latencies are the p50 of {Calls} sequential calls of each measure, taken in {Rounds} interleaved
        rounds (so the baseline and each measure see the same moments of a noisy machine) after {WarmUp} of each to warm up;
        transfers the median of {TransferRepetitions}, interleaved likewise, after one of each.

        {table}
        ```
        {string.Join("\n", targets)}
        ```

        What bounds the figures. The gets read the object straight from the worker that stores it over its channel (the
        .NET client's direct read; protos/CLUSTER.md), so they run at the channel's speed, whichever worker hosts the
        holder. A lookup through the near worker is the client's channel call to its worker plus that worker's round
        trip to Redis. A register or fetch is two channel calls in a row: the client's to its worker (HOLDER_GET,
        REGISTER, FETCH), and that worker's, forwarded on the far worker's channel through its peer session there; a
        channel call costs about a third to a half of a gRPC one, so the two together come near one bare gRPC call.
        A put for the far holder stores the bytes near and asks nothing of the far worker once the near one was told
        of the holder (at its lookup); the first register of such a ref adds the far worker's borrow back from the
        near one (a third hop, on the near worker's channel), later registers of it do not.
        """;

    /// <summary>A buffer writer over one fixed native buffer, rewound for each transfer.</summary>
    private sealed class FixedWriter(NativeBuffer buffer) : System.Buffers.IBufferWriter<byte>
    {
        private int _written;

        public void Advance(int count) => _written += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => buffer.Memory[_written..];

        public Span<byte> GetSpan(int sizeHint = 0) => buffer.Span[_written..];
    }
}
