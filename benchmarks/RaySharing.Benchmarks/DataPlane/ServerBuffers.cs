namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// The server process's warm buffers for the baselines: a source that gets read from and a sink that puts
/// land in, both resident before a row starts (<see cref="BulkStreamService.Prepare"/>), freed between sizes.
/// </summary>
internal static class ServerBuffers
{
    private static readonly Lock Gate = new();
    private static NativeBuffer? s_source;
    private static NativeBuffer? s_sink;

    public static NativeBuffer Source => Volatile.Read(ref s_source) ?? throw new InvalidOperationException("No buffers are prepared; call Prepare first.");

    public static NativeBuffer Sink => Volatile.Read(ref s_sink) ?? throw new InvalidOperationException("No buffers are prepared; call Prepare first.");

    /// <summary>Replaces both buffers with warm ones of the sizes given; 0 leaves none.</summary>
    public static void Prepare(long sourceBytes, long sinkBytes)
    {
        lock (Gate)
        {
            // Freed before the new ones are made, so a 1 GiB row never holds two generations at once.
            Interlocked.Exchange(ref s_source, null)?.Free();
            Interlocked.Exchange(ref s_sink, null)?.Free();
            if (sourceBytes > 0)
            {
                Volatile.Write(ref s_source, new NativeBuffer(sourceBytes));
            }

            if (sinkBytes > 0)
            {
                Volatile.Write(ref s_sink, new NativeBuffer(sinkBytes));
            }
        }
    }
}
