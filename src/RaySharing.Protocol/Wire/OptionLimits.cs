namespace RaySharing.Wire;

/// <summary>
/// The ranges the client's and the worker's options share, in one place so the two sides agree on what
/// a chunk, a message and a timeout may be.
/// </summary>
internal static class OptionLimits
{
    /// <summary>The smallest chunk of a streaming put or get: smaller chunks cost more in framing than they carry.</summary>
    public const int MinChunkBytes = 4 << 10;

    /// <summary>The largest chunk of a streaming put or get.</summary>
    public const int MaxChunkBytes = 4 << 20;

    /// <summary>
    /// What a message carries besides an object's bytes (header, envelope, framing). A unary object or a
    /// chunk must fit in the largest message less this much.
    /// </summary>
    public const int MessageHeadroomBytes = 4 << 10;

    /// <summary>
    /// The smallest allowed largest-message size: room for a default 1 MiB unary object plus its headroom,
    /// so the documented minimum passes with every other option at its default.
    /// </summary>
    public const int MinMessageBytes = 2 << 20;

    /// <summary>The longest time any option may be: what a timer takes. Infinite waits are what this library rules out.</summary>
    public static readonly TimeSpan MaxTime = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>The largest object or chunk that fits in a message of <paramref name="maxMessageBytes"/>.</summary>
    public static int PayloadLimit(int maxMessageBytes) => maxMessageBytes - MessageHeadroomBytes;
}
