using System.Runtime.InteropServices;

namespace RaySharing.Worker.Storage;

/// <summary>
/// The sealed, immutable bytes of an object, kept as the chunks they arrived in: gRPC's received
/// buffers are adopted rather than copied, and no single array has to hold a huge object. One reference
/// wide: the common case, one chunk that is a whole array (how protobuf parses a bytes field), is that
/// array itself, so the many small objects a store holds cost nothing beyond their bytes.
/// </summary>
internal readonly struct ObjectData
{
    // A byte[] (the whole array is the object) or a Chunks.
    private readonly object _bytes;

    public ObjectData(ReadOnlyMemory<byte> single)
    {
        _bytes = MemoryMarshal.TryGetArray(single, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : new Chunks([single]);
    }

    public ObjectData(ReadOnlyMemory<byte>[] chunks)
    {
        _bytes = chunks.Length == 1 ? new ObjectData(chunks[0])._bytes : new Chunks(chunks);
    }

    public long Length => _bytes switch
    {
        byte[] array => array.Length,
        Chunks chunks => chunks.Length,
        _ => 0,
    };

    /// <summary>The bytes as one block; copies only when the object arrived in several chunks.</summary>
    public ReadOnlyMemory<byte> ToContiguous()
    {
        switch (_bytes)
        {
            case byte[] array:
                return array;
            case Chunks { Parts.Length: 1 } one:
                return one.Parts[0];
            case Chunks chunks:
                var buffer = new byte[chunks.Length];
                var offset = 0;
                foreach (var chunk in chunks.Parts)
                {
                    chunk.Span.CopyTo(buffer.AsSpan(offset));
                    offset += chunk.Length;
                }

                return buffer;
            default:
                return ReadOnlyMemory<byte>.Empty;
        }
    }

    /// <summary>The bytes in slices of at most <paramref name="maxSliceBytes"/>, without copying.</summary>
    public IEnumerable<ReadOnlyMemory<byte>> Slices(int maxSliceBytes)
    {
        ReadOnlyMemory<byte>[] parts = _bytes switch
        {
            byte[] array => [array],
            Chunks chunks => chunks.Parts,
            _ => [],
        };
        foreach (var chunk in parts)
        {
            for (var offset = 0; offset < chunk.Length; offset += maxSliceBytes)
            {
                yield return chunk.Slice(offset, Math.Min(maxSliceBytes, chunk.Length - offset));
            }
        }
    }

    private sealed class Chunks
    {
        public Chunks(ReadOnlyMemory<byte>[] parts)
        {
            Parts = parts;
            foreach (var part in parts)
            {
                Length += part.Length;
            }
        }

        public ReadOnlyMemory<byte>[] Parts { get; }

        public long Length { get; }
    }
}
