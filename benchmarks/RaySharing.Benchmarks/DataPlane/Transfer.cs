using System.Diagnostics;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>One transfer, set up for a size (buffers warm, objects stored): run it once per repetition.</summary>
internal interface ITransfer : IAsyncDisposable
{
    /// <summary>Moves the bytes once; returns how long the part that counts took (set-up and releases excluded).</summary>
    Task<TimeSpan> RunOnceAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A row of the large-object table: who moves the bytes (<paramref name="Name"/>, in a <paramref name="Group"/>),
/// which way, which process serves it (null: the client alone), and how to set it up for a size.
/// </summary>
internal sealed record TransferCase(
    string Group,
    string Name,
    string Direction,
    ProcessProbe? Server,
    Func<long, CancellationToken, Task<ITransfer>> Prepare,
    long MaxBytes = long.MaxValue,
    string? TooLargeReason = null)
{
    public string Label => $"{Name} {Direction}";
}

/// <summary>A transfer from a delegate, with what it holds disposed after the row.</summary>
internal sealed class DelegateTransfer(Func<CancellationToken, Task<TimeSpan>> run, Func<ValueTask>? dispose = null) : ITransfer
{
    public Task<TimeSpan> RunOnceAsync(CancellationToken cancellationToken) => run(cancellationToken);

    public ValueTask DisposeAsync() => dispose?.Invoke() ?? ValueTask.CompletedTask;

    /// <summary>Times a synchronous copy.</summary>
    public static Task<TimeSpan> Time(Action action)
    {
        var start = Stopwatch.GetTimestamp();
        action();
        return Task.FromResult(Stopwatch.GetElapsedTime(start));
    }

    /// <summary>Times an asynchronous transfer.</summary>
    public static async Task<TimeSpan> TimeAsync(Func<Task> action)
    {
        var start = Stopwatch.GetTimestamp();
        await action().ConfigureAwait(false);
        return Stopwatch.GetElapsedTime(start);
    }
}

/// <summary>A process's resident set when a row started (right after its peak was reset) and its peak during the row, in bytes.</summary>
internal readonly record struct Resident(long StartBytes, long PeakBytes);

/// <summary>The CPU time of the client and of the serving process over one repetition.</summary>
internal readonly record struct CpuSample(TimeSpan Client, TimeSpan Server);

/// <summary>
/// One row's figures for one size: the time of each repetition, the CPU time of the client and of the server
/// process over the repetitions (and, for large objects, over each repetition), each process's resident set during
/// the row, and the client's garbage collections over the repetitions (gen0 and gen2 counts). No times: not run.
/// </summary>
internal sealed record TransferResult(
    TransferCase Case,
    long Size,
    IReadOnlyList<TimeSpan> Times,
    TimeSpan ClientCpu,
    TimeSpan? ServerCpu,
    Resident Client,
    Resident? Server,
    int ClientGen0 = 0,
    int ClientGen2 = 0,
    IReadOnlyList<CpuSample>? RepetitionCpu = null)
{
    public const double GiB = 1L << 30;

    public bool Ran => Times.Count > 0;

    /// <summary>Median throughput over the repetitions, in GB/s (10^9 bytes per second).</summary>
    public double MedianGBps => Median(Times.Select(GBps).ToArray());

    public double MinGBps => Times.Count == 0 ? 0 : Times.Min(GBps);

    public double MaxGBps => Times.Count == 0 ? 0 : Times.Max(GBps);

    /// <summary>
    /// Client plus server CPU seconds per GiB moved: of the median repetition where each was measured (large objects),
    /// so one repetition slowed by the machine (page faults of memory the host took back) does not decide the figure;
    /// otherwise over all the repetitions.
    /// </summary>
    public double CpuSecondsPerGiB => PerGiB(RepetitionCpu is { Count: > 0 } samples
        ? Median(samples.Select(s => (s.Client + s.Server).TotalSeconds).ToArray())
        : (ClientCpu + (ServerCpu ?? TimeSpan.Zero)).TotalSeconds / Times.Count);

    /// <summary>The client's share of <see cref="CpuSecondsPerGiB"/> (its median repetition where measured).</summary>
    public double ClientCpuSecondsPerGiB => PerGiB(RepetitionCpu is { Count: > 0 } samples
        ? Median(samples.Select(s => s.Client.TotalSeconds).ToArray())
        : ClientCpu.TotalSeconds / Times.Count);

    /// <summary>The serving process's share of <see cref="CpuSecondsPerGiB"/> (its median repetition where measured).</summary>
    public double ServerCpuSecondsPerGiB => PerGiB(RepetitionCpu is { Count: > 0 } samples
        ? Median(samples.Select(s => s.Server.TotalSeconds).ToArray())
        : (ServerCpu ?? TimeSpan.Zero).TotalSeconds / Times.Count);

    private double PerGiB(double secondsPerRepetition) => secondsPerRepetition / (Size / GiB);

    public static TransferResult NotRun(TransferCase transferCase, long size) => new(transferCase, size, [], TimeSpan.Zero, null, default, null);

    public static double Median(double[] values)
    {
        if (values.Length == 0)
        {
            return 0;
        }

        Array.Sort(values);
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    private double GBps(TimeSpan time) => Size / time.TotalSeconds / 1e9;
}
