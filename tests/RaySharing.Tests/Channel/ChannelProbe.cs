using System.Buffers;
using System.Diagnostics;
using System.Net;
using RaySharing.Internal.Channel;
using RaySharing.Tests.Infrastructure;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Transport.Channel;
using Xunit;
using Xunit.Abstractions;

namespace RaySharing.Tests.Channel;

/// <summary>A fact that runs only when RS_CHANNEL_PROBE=1: measurements, not checks, for a quiet machine.</summary>
public sealed class ProbeFactAttribute : FactAttribute
{
    public ProbeFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("RS_CHANNEL_PROBE") != "1")
        {
            Skip = "A measurement; run with RS_CHANNEL_PROBE=1.";
        }
    }
}

/// <summary>
/// The channel's micro-measure: p50/p99 of a 100-byte round trip (UDS, TCP loopback), calls per second with 32
/// callers on one connection, and 1 GiB bodies each way (GB/s, CPU seconds per GiB, both ends in this process).
/// </summary>
public sealed class ChannelProbe(ITestOutputHelper output)
{
    private const long GiB = 1L << 30;

    [ProbeFact]
    public async Task Probe_SmallCallsAndBodies()
    {
        var handler = new ProbeHandler();
        var channel = new ChannelListener(
            new ChannelListenerOptions { TcpEndPoint = new IPEndPoint(IPAddress.Loopback, 0), UnixSocketPath = ChannelServer.TempSocketPath() },
            handler);
        await using var stopListener = channel.DisposedWithin();
        channel.Start();
        var endpoints = new[] { ("unix", ChannelEndpoint.Unix(channel.UnixSocketPath!)), ("tcp", ChannelEndpoint.Tcp("127.0.0.1", channel.TcpEndPoint!.Port)) };
        var payload = new byte[100];

        foreach (var (name, endpoint) in endpoints)
        {
            await using var connection = await ChannelConnection.ConnectAsync(endpoint).Within();
            (await connection.SendAsync(ChannelOp.Hello, new byte[48]).Within()).Dispose();

            // The loops are bounded as a whole: a Within per call would cost more than the call.
            async Task<long> CallAsync() => await Calls(connection, payload).ConfigureAwait(false);
            var (p50, p90, p99, perCall) = await LatencyAsync(CallAsync).Within(TimeSpan.FromMinutes(2));
            Report($"{name}: 100-byte round trip, one caller: p50 {p50:0.0} us, p90 {p90:0.0} us, p99 {p99:0.0} us; {perCall:0} bytes allocated per call (both ends)");
            foreach (var callers in new[] { 1, 32 })
            {
                var (writes, frames) = (connection.Writes, connection.FramesSent);
                var (rate, cpuPerCall) = await ThroughputAsync(callers, CallAsync).Within(TimeSpan.FromMinutes(2));
                Report($"{name}: {callers} caller(s) on one connection: {rate:N0} calls/s, {cpuPerCall:0.0} CPU-us per call (both ends); {(double)(connection.FramesSent - frames) / (connection.Writes - writes):0.00} frames per write");
            }
        }

        await ProbeGrpcAsync().Within(TimeSpan.FromMinutes(2));
        if (Environment.GetEnvironmentVariable("RS_CHANNEL_PROBE_BODIES") == "0")
        {
            return;
        }

        // Made and touched before the clock runs: page faults and the random fill are not the channel's.
        Array.Fill(handler.Destination, (byte)1);
        _ = handler.Source;
        foreach (var (name, endpoint) in endpoints)
        {
            await using var body = await ChannelBodyConnection.ConnectAsync(endpoint).Within();
            (await body.ExchangeAsync(ChannelOp.Hello, new byte[48]).Within()).Dispose();
            for (var round = 0; round < 3; round++)
            {
                var (getSeconds, getCpu) = await MeasureAsync(async () =>
                {
                    using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within();
                    await body.ReadBodyAsync(handler.Destination).Within(TimeSpan.FromMinutes(2));
                }).Within(TimeSpan.FromMinutes(2));
                Report($"{name}: 1 GiB BULK_GET: {GiB / getSeconds / 1e9:0.00} GB/s, {getCpu:0.00} CPU-s per GiB (both ends)");
                var (putSeconds, putCpu) = await MeasureAsync(async () =>
                {
                    using var reply = await body.ExchangeAsync(ChannelOp.BulkPut, new byte[16], new ReadOnlySequence<byte>(handler.Source)).Within(TimeSpan.FromMinutes(2));
                    Assert.True(reply.IsOk);
                }).Within(TimeSpan.FromMinutes(2));
                Report($"{name}: 1 GiB BULK_PUT: {GiB / putSeconds / 1e9:0.00} GB/s, {putCpu:0.00} CPU-s per GiB (both ends)");
            }
        }
    }

    /// <summary>The same 100-byte read over the gRPC API (a unary Objects.Get), on the same machine at the same time.</summary>
    private async Task ProbeGrpcAsync()
    {
        await using var worker = await TestWorker.StartAsync().Within();
        var client = await worker.ConnectAsync().Within();
        var objectRef = await client.PutAsync(new byte[100]).Within();
        async Task<long> CallAsync() => (await client.GetBytesAsync(objectRef).ConfigureAwait(false)).Length;
        var (p50, p90, p99, perCall) = await LatencyAsync(CallAsync, scale: 5).Within(TimeSpan.FromMinutes(2));
        Report($"grpc: 100-byte Objects.Get, one caller: p50 {p50:0.0} us, p90 {p90:0.0} us, p99 {p99:0.0} us; {perCall:0} bytes allocated per call (both ends)");
        var (rate, cpuPerCall) = await ThroughputAsync(32, CallAsync).Within(TimeSpan.FromMinutes(2));
        Report($"grpc: 32 callers on one client: {rate:N0} calls/s, {cpuPerCall:0.0} CPU-us per call (both ends)");
    }

    private static async Task<long> Calls(ChannelConnection connection, byte[] payload)
    {
        using var reply = await connection.SendAsync(ChannelOp.Get, payload).ConfigureAwait(false);
        return reply.Payload.Length;
    }

    private static async Task<(double P50, double P90, double P99, double BytesPerCall)> LatencyAsync(Func<Task<long>> call, int scale = 1)
    {
        for (var i = 0; i < 10_000 / scale; i++)
        {
            await call().ConfigureAwait(false);
        }

        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var count = 20_000 / scale;
        for (var i = 0; i < count; i++)
        {
            await call().ConfigureAwait(false);
        }

        var perCall = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)count;
        var samples = new long[50_000 / scale];
        for (var i = 0; i < samples.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call().ConfigureAwait(false);
            samples[i] = Stopwatch.GetTimestamp() - start;
        }

        Array.Sort(samples);
        return (Micros(samples[samples.Length / 2]), Micros(samples[samples.Length * 9 / 10]), Micros(samples[samples.Length * 99 / 100]), perCall);
    }

    private static async Task<(double CallsPerSecond, double CpuMicrosPerCall)> ThroughputAsync(int callers, Func<Task<long>> call)
    {
        var stop = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var counts = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            long n = 0;
            while (DateTime.UtcNow < stop)
            {
                await call().ConfigureAwait(false);
                n++;
            }

            return n;
        }))).ConfigureAwait(false);
        var calls = counts.Sum();
        return (calls / clock.Elapsed.TotalSeconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / calls * 1e6);
    }

    private static long MinorFaults() => long.Parse(File.ReadAllText("/proc/self/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[7], System.Globalization.CultureInfo.InvariantCulture);

    private static double Micros(long ticks) => ticks * 1e6 / Stopwatch.Frequency;

    private async Task<(double Seconds, double Cpu)> MeasureAsync(Func<Task> transfer)
    {
        var gen2 = GC.CollectionCount(2);
        var paused = GC.GetTotalPauseDuration();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var kernel = Process.GetCurrentProcess().PrivilegedProcessorTime;
        var faults = MinorFaults();
        var clock = Stopwatch.StartNew();
        await transfer().Within(TimeSpan.FromMinutes(2));
        var result = (clock.Elapsed.TotalSeconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
        Report($"  (of which kernel {(Process.GetCurrentProcess().PrivilegedProcessorTime - kernel).TotalSeconds:0.00} CPU-s; {MinorFaults() - faults} minor page faults)");
        if (GC.CollectionCount(2) != gen2)
        {
            Report($"  ({GC.CollectionCount(2) - gen2} gen2 collection(s) during the transfer, {(GC.GetTotalPauseDuration() - paused).TotalMilliseconds:0} ms paused)");
        }

        return result;
    }

    private void Report(string line)
    {
        output.WriteLine(line);
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "channel-probe.txt"), line + Environment.NewLine);
    }

    /// <summary>Echoes GET; BULK_GET sends a 1 GiB array; BULK_PUT reads into another in 64 MiB pieces.</summary>
    private sealed class ProbeHandler : IChannelHandler
    {
        private readonly Lazy<byte[]> _source = new(Filled);
        private readonly Lazy<byte[]> _destination = new(() => new byte[GiB]);

        public byte[] Source => _source.Value;

        public byte[] Destination => _destination.Value;

        public async ValueTask HandleAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
        {
            switch (request.Op)
            {
                case ChannelOp.Hello:
                    request.Connection.Session = "probe";
                    break;
                case ChannelOp.BulkGet:
                    await response.SendBodyAsync(new ReadOnlySequence<byte>(Source), cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.BulkPut:
                    for (long at = 0; at < request.BodyLength; at += 64 << 20)
                    {
                        await request.ReadBodyAsync(Destination.AsMemory((int)at, (int)Math.Min(64 << 20, request.BodyLength - at)), cancellationToken).ConfigureAwait(false);
                    }

                    break;
                default:
                    response.Payload.Write(request.Payload.Span);
                    break;
            }
        }

        private static byte[] Filled()
        {
            var bytes = new byte[GiB];
            new Random(1).NextBytes(bytes);
            return bytes;
        }
    }
}
