using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Net.Client;
using RaySharing.Benchmarks.V1;
using RaySharing.Testing;

namespace RaySharing.Benchmarks.CrossLanguage;

/// <summary>
/// The Python client against the .NET client (<c>--python</c>), on one worker process (this program in serve mode),
/// in interleaved rounds so that the machine's noise weighs on both alike: small put+get pairs per second and 64 MiB
/// gets in GB/s, each as Python / .NET of the same round; and what bounds Python: a bare gRPC unary call from each
/// language to the same server, and each client's gets on the transports the other has.
/// </summary>
internal static class PythonRun
{
    public const string Flag = "--python";

    private const string Interpreter = "/usr/bin/python3";
    private const int PayloadBytes = 100;
    private const int LargeBytes = 64 << 20;
    private const int LargeGets = 3;

    public static async Task<int> RunAsync(string[] args)
    {
        var outPath = Value(args, "--out");
        var rounds = int.Parse(Value(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        var seconds = double.Parse(Value(args, "--seconds") ?? "2", CultureInfo.InvariantCulture);
        var root = RepositoryRoot();
        var bench = Path.Combine(root, "clients", "python", "benchmarks", "bench.py");
        if (!File.Exists(Path.Combine(root, "clients", "python", "raysharing", "v1", "objects_pb2_grpc.py")))
        {
            Console.Error.WriteLine("The Python client's stubs are not generated: run clients/python/generate-stubs.sh first.");
            return 2;
        }

        using var run = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var started = DateTime.UtcNow;
        Environment.SetEnvironmentVariable("DOTNET_GCConserveMemory", "7");
        using var server = ChildProcess.StartSelf("benchmark server", Serve.Mode);
        var address = (await server.WaitForLineAsync(Serve.ListeningPrefix, TimeSpan.FromSeconds(60), run.Token))[Serve.ListeningPrefix.Length..].Trim();

        await using var dotnet = await RaySharingClient.ConnectAsync(new RaySharingClientOptions { Address = new Uri(address), ClientName = "bench-dotnet" }, run.Token);
        await using var dotnetGrpc = await RaySharingClient.ConnectAsync(new RaySharingClientOptions
        {
            Address = new Uri(address), ClientName = "bench-dotnet-grpc", UseChannel = false, UseSharedMemory = false,
        }, run.Token);
        await using var dotnetBulk = await RaySharingClient.ConnectAsync(new RaySharingClientOptions
        {
            Address = new Uri(address), ClientName = "bench-dotnet-channel", UseSharedMemory = false,
        }, run.Token);
        if (!dotnet.UsesSharedMemory)
        {
            Console.Error.WriteLine("The .NET client did not attach shared memory; the comparison would not be like for like.");
            return 1;
        }

        using var echoChannel = GrpcChannel.ForAddress(address);
        var echo = new Echo.EchoClient(echoChannel);
        var payload = new byte[PayloadBytes];
        new Random(1).NextBytes(payload);
        var echoRequest = new EchoMessage { Payload = ByteString.CopyFrom(payload) };
        var large = new byte[LargeBytes];
        new Random(2).NextBytes(large);

        // Warm-up: JIT, connections, the first touches of the arena.
        await SmallPairsAsync(dotnet, payload, 0.5, run.Token);
        await SmallPairsAsync(dotnetGrpc, payload, 0.5, run.Token);
        await EchoCallsAsync(echo, echoRequest, 0.5, run.Token);
        await LargeGetsAsync(dotnet, large, into: false, run.Token);

        var measures = new Dictionary<string, List<double>>();
        void Add(string name, double value) => (measures.TryGetValue(name, out var list) ? list : measures[name] = []).Add(value);
        for (var round = 1; round <= rounds; round++)
        {
            Add("dotnet_small_pairs_per_s", await SmallPairsAsync(dotnet, payload, seconds, run.Token));
            Add("dotnet_grpc_small_pairs_per_s", await SmallPairsAsync(dotnetGrpc, payload, seconds, run.Token));
            Add("dotnet_echo_calls_per_s", await EchoCallsAsync(echo, echoRequest, seconds, run.Token));
            Add("dotnet_large_get_shm_gbps", await LargeGetsAsync(dotnet, large, into: false, run.Token));
            Add("dotnet_large_get_into_shm_gbps", await LargeGetsAsync(dotnet, large, into: true, run.Token));
            Add("dotnet_large_get_into_channel_gbps", await LargeGetsAsync(dotnetBulk, large, into: true, run.Token));
            Add("dotnet_large_get_into_grpc_gbps", await LargeGetsAsync(dotnetGrpc, large, into: true, run.Token));
            foreach (var (name, value) in await PythonRoundAsync(bench, address, seconds, run.Token))
            {
                Add("python_" + name, value);
            }

            Console.Error.WriteLine($"round {round}/{rounds}: " + string.Join(", ", measures.Select(m => $"{m.Key} {m.Value[^1]:0.###}")));
        }

        var report = Report(measures, rounds, seconds, started, await PythonVersionAsync(run.Token));
        Console.WriteLine(report);
        if (outPath is not null)
        {
            await File.WriteAllTextAsync(outPath, report, run.Token);
            Console.Error.WriteLine($"written to {outPath}");
        }

        return 0;
    }

    private static async Task<double> SmallPairsAsync(RaySharingClient client, byte[] payload, double seconds, CancellationToken cancellationToken)
    {
        var count = 0;
        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(seconds);
        while (clock.Elapsed < until)
        {
            var objectRef = await client.PutAsync(payload, cancellationToken: cancellationToken);
            _ = await client.GetBytesAsync(objectRef, cancellationToken);
            await objectRef.DisposeAsync();
            count++;
        }

        return count / clock.Elapsed.TotalSeconds;
    }

    private static async Task<double> EchoCallsAsync(Echo.EchoClient echo, EchoMessage request, double seconds, CancellationToken cancellationToken)
    {
        var count = 0;
        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(seconds);
        while (clock.Elapsed < until)
        {
            using var call = echo.EchoAsync(request, cancellationToken: cancellationToken);
            await call.ResponseAsync;
            count++;
        }

        return count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// The median of <see cref="LargeGets"/> gets of one 64 MiB object, after a warm get; in GB/s. With
    /// <paramref name="into"/>, CopyToAsync into one kept buffer (as Python's get_into); else GetBytesAsync (new memory).
    /// </summary>
    private static async Task<double> LargeGetsAsync(RaySharingClient client, byte[] data, bool into, CancellationToken cancellationToken)
    {
        var objectRef = await client.PutEncodedAsync(data, cancellationToken: cancellationToken);
        var buffer = new ArrayBufferWriter<byte>(data.Length);
        async Task<int> ReadAsync()
        {
            if (!into)
            {
                return (await client.GetBytesAsync(objectRef, cancellationToken)).Length;
            }

            buffer.ResetWrittenCount();
            await client.CopyToAsync(objectRef, buffer, cancellationToken: cancellationToken);
            return buffer.WrittenCount;
        }

        try
        {
            _ = await ReadAsync();
            var rates = new List<double>();
            for (var i = 0; i < LargeGets; i++)
            {
                var clock = Stopwatch.StartNew();
                var count = await ReadAsync();
                rates.Add(count / clock.Elapsed.TotalSeconds / 1e9);
            }

            return Median(rates);
        }
        finally
        {
            await objectRef.DisposeAsync();
        }
    }

    private static async Task<IReadOnlyDictionary<string, double>> PythonRoundAsync(string bench, string address, double seconds, CancellationToken cancellationToken)
    {
        var (exitCode, stdout, stderr) = await RunPythonAsync([bench, "--address", address, "--seconds", seconds.ToString(CultureInfo.InvariantCulture),
            "--large-bytes", LargeBytes.ToString(CultureInfo.InvariantCulture), "--large-gets", LargeGets.ToString(CultureInfo.InvariantCulture)], cancellationToken);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"bench.py failed (exit {exitCode}): {stderr}");
        }

        return JsonSerializer.Deserialize<Dictionary<string, double>>(stdout.Trim().Split('\n')[^1])
            ?? throw new InvalidOperationException($"bench.py printed no result: {stdout}");
    }

    private static async Task<string> PythonVersionAsync(CancellationToken cancellationToken)
    {
        var (_, stdout, _) = await RunPythonAsync(["-c", "import sys, grpc, google.protobuf as p; print(sys.version.split()[0], 'grpcio', grpc.__version__, 'protobuf', p.__version__)"], cancellationToken);
        return stdout.Trim();
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunPythonAsync(string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Interpreter, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment.Remove("PYTHONPATH");
        start.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {Interpreter}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"python3 {string.Join(' ', arguments)} did not finish within 2 minutes.");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string Report(Dictionary<string, List<double>> m, int rounds, double seconds, DateTime started, string python)
    {
        string Ratio(string py, string net)
        {
            var ratios = m[py].Zip(m[net], (p, n) => p / n).ToList();
            return $"{Median(ratios):0.00} ({ratios.Min():0.00}–{ratios.Max():0.00})";
        }

        string Row(string what, string py, string net, string unit, string format) =>
            $"| {what} | {Median(m[py]).ToString(format, CultureInfo.InvariantCulture)} {unit} | {Median(m[net]).ToString(format, CultureInfo.InvariantCulture)} {unit} | {Ratio(py, net)} |";

        var text = new StringBuilder();
        text.AppendLine("# Python client against the .NET client");
        text.AppendLine();
        text.AppendLine($"Command: `dotnet run --project benchmarks/RaySharing.Benchmarks -c Release -- {Flag} --out benchmarks/PYTHON.md` " +
            $"({rounds} rounds of {seconds.ToString(CultureInfo.InvariantCulture)} s per rate; {LargeGets} timed gets of a {LargeBytes >> 20} MiB object per round and client, after a warm one).");
        text.AppendLine();
        text.AppendLine($"Run {started:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; " +
            $".NET {Environment.Version}; Debian's Python {python}.");
        text.AppendLine();
        text.AppendLine("One worker process (this program in serve mode, as in the other benchmarks). Each round measures every .NET figure, then starts " +
            "`clients/python/benchmarks/bench.py`, which measures the Python ones; ratios are Python / .NET of the same round, so the machine's noise " +
            "weighs on both. Medians over the rounds; the ratio's range over the rounds in brackets.");
        text.AppendLine();
        text.AppendLine("| Figure | Python | .NET | Python / .NET |");
        text.AppendLine("|---|---|---|---|");
        text.AppendLine(Row("Small put+get pairs (100 B, session-owned; each client's default transport)", "python_small_pairs_per_s", "dotnet_small_pairs_per_s", "/s", "N0"));
        text.AppendLine(Row("64 MiB get into a kept buffer (Python `get_into`, .NET `CopyToAsync`), shared memory (each client's default on the worker's host)", "python_large_get_into_shm_gbps", "dotnet_large_get_into_shm_gbps", "GB/s", "0.00"));
        text.AppendLine(Row("64 MiB get into new memory (Python `get`, .NET `GetBytesAsync`), shared memory", "python_large_get_shm_gbps", "dotnet_large_get_shm_gbps", "GB/s", "0.00"));
        text.AppendLine();
        text.AppendLine("What bounds them:");
        text.AppendLine();
        text.AppendLine("| Figure | Python | .NET | Python / .NET |");
        text.AppendLine("|---|---|---|---|");
        text.AppendLine(Row("Small put+get pairs, both on gRPC unary calls (the channel off)", "python_small_pairs_grpc_per_s", "dotnet_grpc_small_pairs_per_s", "/s", "N0"));
        text.AppendLine(Row("Bare gRPC unary echo (100 B) to the same server, no RaySharing", "python_echo_calls_per_s", "dotnet_echo_calls_per_s", "/s", "N0"));
        text.AppendLine(Row("64 MiB get into a kept buffer, a channel body (shared memory off: as from another host)", "python_large_get_into_channel_gbps", "dotnet_large_get_into_channel_gbps", "GB/s", "0.00"));
        text.AppendLine(Row("64 MiB get into a kept buffer, gRPC streaming (shared memory and the channel off)", "python_large_get_into_grpc_gbps", "dotnet_large_get_into_grpc_gbps", "GB/s", "0.00"));
        text.AppendLine();
        text.AppendLine($"Python alone, on the same {LargeBytes >> 20} MiB: a copy into a kept bytearray {Median(m["python_copy_gbps"]):0.00} GB/s, " +
            $"`zlib.crc32` {Median(m["python_crc32_gbps"]):0.00} GB/s. `get_into` does both to every byte, one after the other, on one thread.");
        text.AppendLine();
        text.AppendLine("Per round:");
        text.AppendLine();
        text.AppendLine("| Measure | " + string.Join(" | ", Enumerable.Range(1, rounds)) + " |");
        text.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", rounds)));
        foreach (var (name, values) in m.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.AppendLine($"| {name} | " + string.Join(" | ", values.Select(v => v.ToString(v >= 100 ? "N0" : "0.00", CultureInfo.InvariantCulture))) + " |");
        }

        return text.ToString();
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string? Value(string[] args, string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "RaySharing.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"RaySharing.sln not found above {AppContext.BaseDirectory}: run the benchmark from the repository's build.");
    }
}
