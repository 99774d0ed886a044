using System.Buffers;
using System.Runtime.InteropServices;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// Page-aligned native memory outside the GC heap, written once so every page is resident: the warm
/// source or destination of the baselines, whose copies then measure bandwidth, not page faults.
/// </summary>
internal sealed unsafe class NativeBuffer : MemoryManager<byte>
{
    private const int PageBytes = 4096;

    private byte* _pointer;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Array.MaxLength);
        Length = (int)length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), PageBytes);
        Fill();
    }

    public int Length { get; }

    public Span<byte> Span => new(_pointer, Length);

    public override Span<byte> GetSpan() => Span;

    /// <summary>Frees the memory; the buffer must not be used after.</summary>
    public void Free() => ((IDisposable)this).Dispose();

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    /// <summary>Non-zero bytes in every page: a buffer of zeros could be served by the kernel's shared zero page.</summary>
    private void Fill()
    {
        var pattern = new byte[1 << 20];
        new Random(7).NextBytes(pattern);
        var span = Span;
        for (var offset = 0; offset < span.Length; offset += pattern.Length)
        {
            pattern.AsSpan(0, Math.Min(pattern.Length, span.Length - offset)).CopyTo(span[offset..]);
        }
    }
}
