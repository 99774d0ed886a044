using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace RaySharing.Wire;

/// <summary>
/// Reuses the strings envelopes repeat (namespace, holder name, worker address, codec, type name), so
/// decoding a fetch of thousands of refs does not allocate thousands of copies of the same few strings.
/// Bounded: hostile envelopes full of fresh strings cannot grow it past <see cref="Capacity"/>.
/// </summary>
internal static class StringCache
{
    private const int Capacity = 4096;
    private const int MaxCachedChars = 128;

    private static readonly ConcurrentDictionary<string, string> Strings = new(StringComparer.Ordinal);
    private static int _count;
    private static readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> ByChars =
        Strings.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Decodes UTF-8 with <paramref name="encoding"/> (which may throw on invalid bytes), reusing a cached string.</summary>
    public static string GetOrCreate(in ReadOnlySequence<byte> utf8, Encoding encoding)
    {
        if (utf8.IsEmpty)
        {
            return string.Empty;
        }

        if (!utf8.IsSingleSegment || utf8.Length > MaxCachedChars)
        {
            return encoding.GetString(utf8.ToArray());
        }

        Span<char> chars = stackalloc char[MaxCachedChars];
        var length = encoding.GetChars(utf8.FirstSpan, chars);
        var span = chars[..length];
        if (ByChars.TryGetValue(span, out var cached))
        {
            return cached;
        }

        var created = new string(span);
        // ConcurrentDictionary.Count takes every lock; a counter of our own does not.
        if (Volatile.Read(ref _count) < Capacity && Strings.TryAdd(created, created))
        {
            Interlocked.Increment(ref _count);
        }

        return created;
    }
}
