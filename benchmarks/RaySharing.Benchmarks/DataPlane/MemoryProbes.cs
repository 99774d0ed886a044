namespace RaySharing.Benchmarks.DataPlane;

/// <summary>What one 1 GiB object costs in memory: the worker's resident set holding it, and the client's peak while getting it.</summary>
internal sealed record MemoryResult(string Path, long ObjectBytes, long WorkerIdleBytes, long WorkerHoldingBytes, long ClientStartBytes, long ClientPeakBytes, long ClientPeakSharedBytes)
{
    /// <summary>The worker's resident growth while it holds the object, in GiB of resident set per GiB of object.</summary>
    public double WorkerGiBPerObjectGiB => (WorkerHoldingBytes - WorkerIdleBytes) / (double)ObjectBytes;

    /// <summary>The client's peak growth of its own memory (resident set less mapped shared memory) during one get, less the object's own size, in MiB.</summary>
    public double ClientPeakOverObjectMiB => (ClientPeakBytes - ClientStartBytes - ObjectBytes) / (double)DataPlaneSettings.MiB;
}

/// <summary>Measures <see cref="MemoryResult"/> through one path.</summary>
internal static class MemoryProbes
{
    public static async Task<MemoryResult> MeasureAsync(Workload workload, RaySharingClient client, IDataPath path, ProcessProbe server, long size, CancellationToken cancellationToken)
    {
        await ProcessSettle.BothAsync(workload, cancellationToken).ConfigureAwait(false);
        var idle = server.ResidentBytes();
        ObjectRef stored;
        using (var source = new NativeBuffer(size))
        {
            stored = await path.PutAsync(source.Memory, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            // After a full collection, so that only what the store keeps counts, not a put's transient buffers.
            await ProcessSettle.BothAsync(workload, cancellationToken).ConfigureAwait(false);
            var holding = server.ResidentBytes();

            // Into a buffer writer that holds the object, as a caller's would; sampled every millisecond, since
            // VmHWM would also count the arena pages the client maps (the store's copy, not the client's).
            var start = ProcessProbe.Self.ResidentParts().Private;
            var writer = new System.Buffers.ArrayBufferWriter<byte>((int)size);
            long peak = start, peakShared = 0;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    var (own, shared) = ProcessProbe.Self.ResidentParts();
                    peak = Math.Max(peak, own);
                    peakShared = Math.Max(peakShared, shared);
                    await Task.Delay(1, CancellationToken.None).ConfigureAwait(false);
                }
            }, CancellationToken.None);
            await client.CopyToAsync(stored, writer, cancellationToken: cancellationToken).ConfigureAwait(false);
            await sampling.CancelAsync().ConfigureAwait(false);
            await sampler.ConfigureAwait(false);
            var (end, endShared) = ProcessProbe.Self.ResidentParts();
            peak = Math.Max(peak, end);
            peakShared = Math.Max(peakShared, endShared);
            var length = writer.WrittenCount;
            if (length != size)
            {
                throw new InvalidOperationException($"A {path.Name} get returned {length} bytes instead of {size}.");
            }

            GC.KeepAlive(writer);
            return new MemoryResult(path.Name, size, idle, holding, start, peak, peakShared);
        }
        finally
        {
            await path.ReleaseAsync([stored], CancellationToken.None).ConfigureAwait(false);
        }
    }
}
