namespace RaySharing.Worker.Storage;

/// <summary>
/// The sealed, immutable bytes of an object, kept as the chunks they arrived in: gRPC's received
/// buffers are adopted rather than copied, and no single array has to hold a huge object. The common
/// one-chunk case needs no chunk array, and the struct lives inside its StoredObject: the many small
/// objects a store holds cost the garbage collector as few objects as possible.
/// </summary>
internal readonly struct ObjectData
{
    private readonly ReadOnlyMemory<byte> _single;
    private readonly ReadOnlyMemory<byte>[]? _chunks;

    public ObjectData(ReadOnlyMemory<byte> single)
    {
        _single = single;
        Length = single.Length;
    }

    public ObjectData(ReadOnlyMemory<byte>[] chunks)
    {
        if (chunks.Length == 1)
        {
            _single = chunks[0];
            Length = _single.Length;
            return;
        }

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
        if (_chunks is null)
        {
            return _single;
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
        foreach (var chunk in _chunks ?? [_single])
        {
            for (var offset = 0; offset < chunk.Length; offset += maxSliceBytes)
            {
                yield return chunk.Slice(offset, Math.Min(maxSliceBytes, chunk.Length - offset));
            }
        }
    }
}
