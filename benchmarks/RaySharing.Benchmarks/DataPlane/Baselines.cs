using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using RaySharing.Benchmarks.V1;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// The rows RaySharing is measured against, from the cheapest possible move of the bytes (a copy in one
/// process) to the transports a user could pick instead: raw TCP, bare gRPC streaming, Redis.
/// </summary>
internal static class Baselines
{
    public const string Group = "baseline";

    public const string Memcpy = "memcpy";

    public const string ShmCopy = "shm-copy";

    public const string Socket = "socket";

    public const string GrpcStream = "grpc-stream";

    /// <summary>The chunk of the bare gRPC streaming baseline.</summary>
    public const int StreamChunkBytes = 1 << 20;

    public static IEnumerable<TransferCase> Create(Workload workload, int socketPort, ProcessProbe server)
    {
        var bulk = new BulkStream.BulkStreamClient(workload.Channel);
        yield return new TransferCase(Group, Memcpy, "copy", null, (size, _) => Task.FromResult(MemcpyTransfer(size)));
        yield return new TransferCase(Group, ShmCopy, "get", null, (size, _) => Task.FromResult(ShmCopyTransfer(size)));
        yield return new TransferCase(Group, Socket, "get", server, (size, ct) => SocketTransferAsync(bulk, socketPort, RawSocketServer.Get, size, ct));
        yield return new TransferCase(Group, Socket, "put", server, (size, ct) => SocketTransferAsync(bulk, socketPort, RawSocketServer.Put, size, ct));
        yield return new TransferCase(Group, GrpcStream, "get", server, (size, ct) => DownloadAsync(bulk, size, ct));
        yield return new TransferCase(Group, GrpcStream, "put", server, (size, ct) => UploadAsync(bulk, size, ct));
    }

    /// <summary>A Span copy between two warm native buffers in this process: the ceiling of any transfer.</summary>
    private static ITransfer MemcpyTransfer(long size)
    {
        var source = new NativeBuffer(size);
        var destination = new NativeBuffer(size);
        return new DelegateTransfer(
            _ => DelegateTransfer.Time(() => source.Span.CopyTo(destination.Span)),
            () =>
            {
                source.Free();
                destination.Free();
                return ValueTask.CompletedTask;
            });
    }

    /// <summary>
    /// A warm shared-memory mapping (a file under /dev/shm, written once and read through) copied into a new array
    /// each time: the best a get into a fresh array can do on one host, the destination's page faults included.
    /// </summary>
    private static unsafe ITransfer ShmCopyTransfer(long size)
    {
        var path = Path.Combine("/dev/shm", $"raysharing-bench-{Environment.ProcessId}-{size}");
        using (var source = new NativeBuffer(size))
        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(source.Span);
        }

        var mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = mapping.CreateViewAccessor(0, size, MemoryMappedFileAccess.Read);
        // The mapping keeps the memory; unlinked now, the file cannot outlive a run that dies.
        File.Delete(path);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        pointer += view.PointerOffset;
        var mapped = (nint)pointer;
        // Warm: every page of the mapping faulted in before the first timed copy.
        long sum = 0;
        for (long offset = 0; offset < size; offset += 4096)
        {
            sum += pointer[offset];
        }

        GC.KeepAlive(sum);
        return new DelegateTransfer(
            _ => DelegateTransfer.Time(() =>
            {
                var destination = new byte[size];
                new ReadOnlySpan<byte>((byte*)mapped, (int)size).CopyTo(destination);
                GC.KeepAlive(destination);
            }),
            () =>
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
                view.Dispose();
                mapping.Dispose();
                return ValueTask.CompletedTask;
            });
    }

    /// <summary>
    /// Loopback TCP to the server process: a get lands in a reused, warm native buffer of the client; a put in
    /// the server's warm sink, answered by one byte once all of it arrived.
    /// </summary>
    private static async Task<ITransfer> SocketTransferAsync(BulkStream.BulkStreamClient bulk, int port, byte op, long size, CancellationToken cancellationToken)
    {
        await bulk.PrepareAsync(op == RawSocketServer.Get ? new PrepareRequest { SourceBytes = size } : new PrepareRequest { SinkBytes = size }, cancellationToken: cancellationToken).ConfigureAwait(false);
        var buffer = new NativeBuffer(size);
        var socket = new System.Net.Sockets.Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken).ConfigureAwait(false);
        var header = new byte[RawSocketServer.HeaderBytes];
        header[0] = op;
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(1), size);
        var ack = new byte[1];
        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                await RawSocketServer.SendAllAsync(socket, header, ct).ConfigureAwait(false);
                if (op == RawSocketServer.Get)
                {
                    await RawSocketServer.ReceiveExactlyAsync(socket, buffer.Memory, ct).ConfigureAwait(false);
                }
                else
                {
                    await RawSocketServer.SendAllAsync(socket, buffer.Memory, ct).ConfigureAwait(false);
                    await RawSocketServer.ReceiveExactlyAsync(socket, ack, ct).ConfigureAwait(false);
                }
            }),
            async () =>
            {
                socket.Dispose();
                buffer.Free();
                await bulk.PrepareAsync(new PrepareRequest()).ConfigureAwait(false);
            });
    }

    /// <summary>A server-streaming download in 1 MiB chunks, each copied into a reused, warm native buffer.</summary>
    private static async Task<ITransfer> DownloadAsync(BulkStream.BulkStreamClient bulk, long size, CancellationToken cancellationToken)
    {
        await bulk.PrepareAsync(new PrepareRequest { SourceBytes = size }, cancellationToken: cancellationToken).ConfigureAwait(false);
        var destination = new NativeBuffer(size);
        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                using var call = bulk.Download(new DownloadRequest { Size = size, ChunkBytes = StreamChunkBytes }, cancellationToken: ct);
                var received = 0;
                while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                {
                    var data = call.ResponseStream.Current.Data.Span;
                    data.CopyTo(destination.Span[received..]);
                    received += data.Length;
                }

                if (received != size)
                {
                    throw new InvalidOperationException($"The download ended after {received} of {size} bytes.");
                }
            }),
            async () =>
            {
                destination.Free();
                await bulk.PrepareAsync(new PrepareRequest()).ConfigureAwait(false);
            });
    }

    /// <summary>A client-streaming upload in 1 MiB chunks from a warm native buffer, copied into the server's warm sink.</summary>
    private static async Task<ITransfer> UploadAsync(BulkStream.BulkStreamClient bulk, long size, CancellationToken cancellationToken)
    {
        await bulk.PrepareAsync(new PrepareRequest { SinkBytes = size }, cancellationToken: cancellationToken).ConfigureAwait(false);
        var source = new NativeBuffer(size);
        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                using var call = bulk.Upload(cancellationToken: ct);
                for (var offset = 0; offset < source.Length; offset += StreamChunkBytes)
                {
                    var chunk = source.Memory.Slice(offset, Math.Min(StreamChunkBytes, source.Length - offset));
                    await call.RequestStream.WriteAsync(new Chunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, ct).ConfigureAwait(false);
                }

                await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                var reply = await call.ResponseAsync.ConfigureAwait(false);
                if (reply.ReceivedBytes != size)
                {
                    throw new InvalidOperationException($"The upload delivered {reply.ReceivedBytes} of {size} bytes.");
                }
            }),
            async () =>
            {
                source.Free();
                await bulk.PrepareAsync(new PrepareRequest()).ConfigureAwait(false);
            });
    }
}
