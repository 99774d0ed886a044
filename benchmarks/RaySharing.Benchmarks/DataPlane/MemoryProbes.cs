namespace RaySharing.Benchmarks.DataPlane;

/// <summary>What one 1 GiB object costs in memory: the worker's resident set holding it, and the client's peak while getting it.</summary>
internal sealed record MemoryResult(string Path, long ObjectBytes, long WorkerIdleBytes, long WorkerHoldingBytes, long ClientStartBytes, long ClientPeakBytes)
{
    /// <summary>The worker's resident growth while it holds the object, in GiB of resident set per GiB of object.</summary>
    public double WorkerGiBPerObjectGiB => (WorkerHoldingBytes - WorkerIdleBytes) / (double)ObjectBytes;

    /// <summary>The client's peak resident growth during one get, less the object's own size, in MiB.</summary>
    public double ClientPeakOverObjectMiB => (ClientPeakBytes - ClientStartBytes - ObjectBytes) / (double)DataPlaneSettings.MiB;
}

/// <summary>Measures <see cref="MemoryResult"/> through one path.</summary>
internal static class MemoryProbes
{
    public static async Task<MemoryResult> MeasureAsync(Workload workload, IDataPath path, ProcessProbe server, long size, CancellationToken cancellationToken)
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

            ProcessProbe.Self.ResetPeak();
            var start = ProcessProbe.Self.ResidentBytes();
            var length = await path.GetAsync(stored, cancellationToken).ConfigureAwait(false);
            var peak = ProcessProbe.Self.PeakBytes();
            if (length != size)
            {
                throw new InvalidOperationException($"A {path.Name} get returned {length} bytes instead of {size}.");
            }

            return new MemoryResult(path.Name, size, idle, holding, start, peak);
        }
        finally
        {
            await path.ReleaseAsync([stored], CancellationToken.None).ConfigureAwait(false);
        }
    }
}
