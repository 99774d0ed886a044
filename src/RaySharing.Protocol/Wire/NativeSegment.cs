using System.Buffers;

namespace RaySharing.Wire;

/// <summary>
/// A <see cref="Memory{T}"/> over memory-mapped arena memory, so the worker sends straight from its store and
/// a same-host client reads in place. Owns nothing: whoever made it keeps the mapping, and the object's range,
/// alive for as long as the memory is in use.
/// </summary>
internal sealed unsafe class NativeSegment(byte* pointer, int length) : MemoryManager<byte>
{
    public override Span<byte> GetSpan() => new(pointer, length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
