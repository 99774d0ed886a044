using System.Buffers;
using RaySharing.Wire;

namespace RaySharing.Internal;

/// <summary>Where a get's bytes go: a new array, the caller's buffer writer, or the caller's stream.</summary>
internal abstract class GetSink
{
    public abstract ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken);

    /// <summary>
    /// Memory to receive the next bytes into, at most <paramref name="maxBytes"/> (at least one byte): the destination
    /// itself where it has memory of its own (an array, a buffer writer), so a socket fills it without a copy.
    /// </summary>
    public abstract Memory<byte> GetMemory(int maxBytes);

    /// <summary>The first <paramref name="count"/> bytes of the last <see cref="GetMemory"/> are filled: take them.</summary>
    public abstract ValueTask AdvanceAsync(int count, CancellationToken cancellationToken);

    /// <summary>
    /// Copies <paramref name="source"/> into the destination's memory, appending it to <paramref name="crc"/> on the
    /// way (piece by piece while it is in the cache, so the bytes are read once for both).
    /// </summary>
    /// <exception cref="InvalidOperationException">The destination has no room left for the bytes.</exception>
    public async ValueTask WriteCheckedAsync(ReadOnlyMemory<byte> source, RunningCrc32 crc, CancellationToken cancellationToken)
    {
        while (!source.IsEmpty)
        {
            var target = GetMemory(source.Length);
            if (target.IsEmpty)
            {
                throw new InvalidOperationException($"The destination has no room for the last {source.Length} bytes of the object.");
            }

            var count = Math.Min(target.Length, source.Length);
            crc.CopyAndAppend(source.Span[..count], target.Span);
            await AdvanceAsync(count, cancellationToken).ConfigureAwait(false);
            source = source[count..];
        }
    }
}

/// <summary>Counts what reaches another sink: whether a failed read already wrote something there.</summary>
internal sealed class CountingSink(GetSink inner) : GetSink
{
    public long Written { get; private set; }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        Written += chunk.Length;
        return inner.WriteAsync(chunk, cancellationToken);
    }

    public override Memory<byte> GetMemory(int maxBytes) => inner.GetMemory(maxBytes);

    public override ValueTask AdvanceAsync(int count, CancellationToken cancellationToken)
    {
        Written += count;
        return inner.AdvanceAsync(count, cancellationToken);
    }
}

/// <summary>A new array of the object's size; a chunk beyond it is a corrupted transfer, caught by the caller.</summary>
internal sealed class ArraySink(long size) : GetSink
{
    private int _written;

    public byte[] Array { get; } = size == 0 ? [] : GC.AllocateUninitializedArray<byte>(checked((int)size));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        chunk.Span.CopyTo(Array.AsSpan(_written));
        _written += chunk.Length;
        return ValueTask.CompletedTask;
    }

    public override Memory<byte> GetMemory(int maxBytes) => Array.AsMemory(_written, Math.Min(maxBytes, Array.Length - _written));

    public override ValueTask AdvanceAsync(int count, CancellationToken cancellationToken)
    {
        _written += count;
        return ValueTask.CompletedTask;
    }
}

internal sealed class BufferWriterSink(IBufferWriter<byte> writer) : GetSink
{
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        var source = chunk.Span;
        while (!source.IsEmpty)
        {
            var target = writer.GetSpan(Math.Min(source.Length, 1 << 20));
            ThrowIfNoRoom(target.Length);
            var length = Math.Min(target.Length, source.Length);
            source[..length].CopyTo(target);
            writer.Advance(length);
            source = source[length..];
        }

        return ValueTask.CompletedTask;
    }

    public override Memory<byte> GetMemory(int maxBytes)
    {
        var memory = writer.GetMemory(Math.Min(maxBytes, 1 << 20));
        ThrowIfNoRoom(memory.Length);
        return memory[..Math.Min(memory.Length, maxBytes)];
    }

    /// <summary>
    /// A writer asked for room must give at least one byte (IBufferWriter's contract); one that gives none would make
    /// a copy loop forever, so it fails the get instead.
    /// </summary>
    private static void ThrowIfNoRoom(int length)
    {
        if (length == 0)
        {
            throw new InvalidOperationException("The destination IBufferWriter returned no memory when asked for room; it breaks IBufferWriter's contract (GetMemory/GetSpan return at least one byte).");
        }
    }

    public override ValueTask AdvanceAsync(int count, CancellationToken cancellationToken)
    {
        writer.Advance(count);
        return ValueTask.CompletedTask;
    }
}

internal sealed class StreamSink(Stream stream) : GetSink
{
    // A stream has no memory of its own to receive into: one buffer, written to the stream as it fills.
    private byte[]? _buffer;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken) =>
        stream.WriteAsync(chunk, cancellationToken);

    public override Memory<byte> GetMemory(int maxBytes)
    {
        _buffer ??= new byte[1 << 20];
        return _buffer.AsMemory(0, Math.Min(maxBytes, _buffer.Length));
    }

    public override ValueTask AdvanceAsync(int count, CancellationToken cancellationToken) =>
        stream.WriteAsync(_buffer.AsMemory(0, count), cancellationToken);
}

/// <summary>
/// Where a put's bytes come from: memory the caller already has (sent without copying over gRPC), or a
/// stream read in chunks into one rented buffer, so a put of any size holds at most a chunk.
/// </summary>
internal abstract class PutSource
{
    public abstract long Length { get; }

    /// <summary>
    /// The bytes in chunks of at most <paramref name="maxChunkBytes"/>. A chunk is valid until the next one
    /// is asked for; the last one is followed by nothing, and a source that ends early throws.
    /// </summary>
    public abstract IAsyncEnumerable<ReadOnlyMemory<byte>> ChunksAsync(int maxChunkBytes, CancellationToken cancellationToken);
}

internal sealed class MemorySource(ReadOnlySequence<byte> data) : PutSource
{
    public ReadOnlySequence<byte> Data { get; } = data;

    public override long Length => Data.Length;

#pragma warning disable CS1998 // Memory needs no awaiting; the signature is shared with the stream source.
    public override async IAsyncEnumerable<ReadOnlyMemory<byte>> ChunksAsync(int maxChunkBytes, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
#pragma warning restore CS1998
    {
        foreach (var segment in Data)
        {
            for (var offset = 0; offset < segment.Length; offset += maxChunkBytes)
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return segment.Slice(offset, Math.Min(maxChunkBytes, segment.Length - offset));
            }
        }
    }
}

internal sealed class StreamSource(Stream stream, long length) : PutSource
{
    public override long Length => length;

    public override async IAsyncEnumerable<ReadOnlyMemory<byte>> ChunksAsync(int maxChunkBytes, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(maxChunkBytes, Math.Max(length, 1)));
        try
        {
            long remaining = length;
            while (remaining > 0)
            {
                var want = (int)Math.Min(buffer.Length, remaining);
                var read = await stream.ReadAtLeastAsync(buffer.AsMemory(0, want), want, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (read < want)
                {
                    throw new ArgumentException($"The stream ended after {length - remaining + read} of the {length} bytes the put declared; nothing was stored.", "source");
                }

                remaining -= read;
                yield return buffer.AsMemory(0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
