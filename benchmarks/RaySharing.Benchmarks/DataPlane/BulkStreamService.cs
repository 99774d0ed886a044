using Google.Protobuf;
using Grpc.Core;
using RaySharing.Benchmarks.V1;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>The bare gRPC streaming baseline: chunks straight from and into warm native buffers, nothing else.</summary>
internal sealed class BulkStreamService : BulkStream.BulkStreamBase
{
    public override async Task Download(DownloadRequest request, IServerStreamWriter<Chunk> responseStream, ServerCallContext context)
    {
        var source = ServerBuffers.Source.Memory[..checked((int)request.Size)];
        for (var offset = 0; offset < source.Length; offset += request.ChunkBytes)
        {
            var chunk = source.Slice(offset, Math.Min(request.ChunkBytes, source.Length - offset));
            await responseStream.WriteAsync(new Chunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, context.CancellationToken).ConfigureAwait(false);
        }
    }

    public override async Task<UploadReply> Upload(IAsyncStreamReader<Chunk> requestStream, ServerCallContext context)
    {
        var sink = ServerBuffers.Sink.Memory;
        var received = 0;
        while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var data = requestStream.Current.Data.Span;
            data.CopyTo(sink.Span[received..]);
            received += data.Length;
        }

        return new UploadReply { ReceivedBytes = received };
    }

    public override Task<PrepareReply> Prepare(PrepareRequest request, ServerCallContext context)
    {
        ServerBuffers.Prepare(request.SourceBytes, request.SinkBytes);
        return Task.FromResult(new PrepareReply());
    }
}
