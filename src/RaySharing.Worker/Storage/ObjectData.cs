namespace RaySharing.Worker.Storage;

/// <summary>
/// The sealed, immutable bytes of an object, kept as the chunks they arrived in: gRPC's received
/// buffers are adopted rather than copied, and no single array has to hold a huge object.
/// </summary>
internal sealed class ObjectData
{
    private readonly ReadOnlyMemory<byte>[] _chunks;

    public ObjectData(ReadOnlyMemory<byte>[] chunks)
    {
        _chunks = chunks;
        long length = 0;
        foreach (var chunk in chunks)
        {
            length += chunk.Length;
        }

        Length = length;
    }

    public long Length { get; }

    /// <summary>The bytes as one block; copies only when the object arrived in several chunks.</summary>
    public ReadOnlyMemory<byte> ToContiguous()
    {
        if (_chunks.Length == 1)
        {
            return _chunks[0];
        }

        var buffer = new byte[Length];
        var offset = 0;
        foreach (var chunk in _chunks)
        {
            chunk.Span.CopyTo(buffer.AsSpan(offset));
            offset += chunk.Length;
        }

        return buffer;
    }

    /// <summary>The bytes in slices of at most <paramref name="maxSliceBytes"/>, without copying.</summary>
    public IEnumerable<ReadOnlyMemory<byte>> Slices(int maxSliceBytes)
    {
        foreach (var chunk in _chunks)
        {
            for (var offset = 0; offset < chunk.Length; offset += maxSliceBytes)
            {
                yield return chunk.Slice(offset, Math.Min(maxSliceBytes, chunk.Length - offset));
            }
        }
    }
}
