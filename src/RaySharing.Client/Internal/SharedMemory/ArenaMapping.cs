using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using RaySharing.Protocol.V1;
using RaySharing.Wire;

namespace RaySharing.Internal.SharedMemory;

/// <summary>
/// The worker's arena as this process maps it: read-only for gets and leases, and, from the first in-place
/// put, read-write too. Counted: each lease holds the mapping, so disposing it (the session was replaced, the
/// client disposed) unmaps only when the last lease is gone.
/// </summary>
internal sealed unsafe partial class ArenaMapping : IDisposable
{
    private const int SecretOffset = 32;
    private const int SecretBytes = 32;
    private const int PageBytes = 4096;
    private const int MadvPopulateRead = 22;
    private const int MadvPopulateWrite = 23;

    private readonly SafeFileHandle _file;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _readView;
    private readonly byte* _read;
    private readonly Lock _writeGate = new();
    private MemoryMappedViewAccessor? _writeView;
    private byte* _write;
    private int _count = 1;

    private ArenaMapping(SafeFileHandle file, long length)
    {
        _file = file;
        Length = length;
        _map = MemoryMappedFile.CreateFromFile(file, null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        _readView = _map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        _read = Acquire(_readView);
    }

    public long Length { get; }

    /// <summary>The secret in the arena's header, which proves to the worker that this process mapped it.</summary>
    public ReadOnlySpan<byte> Secret => new(_read + SecretOffset, SecretBytes);

    /// <summary>
    /// Maps the arena a worker offered, or returns null with the reason when this process cannot: another
    /// host or PID namespace (the path names nothing, or another process's file), another user, not Linux.
    /// </summary>
    public static ArenaMapping? TryOpen(SharedMemoryOffer offer, out string? why)
    {
        why = null;
        if (!OperatingSystem.IsLinux())
        {
            why = "shared memory is used on Linux only";
            return null;
        }

        var path = $"/proc/{offer.WorkerPid}/fd/{offer.ArenaFd}";
        SafeFileHandle? file = null;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            if (RandomAccess.GetLength(file) < (long)offer.ArenaBytes || offer.ArenaBytes < PageBytes)
            {
                why = $"{path} is not the worker's arena (its size differs)";
                return null;
            }

            var mapping = new ArenaMapping(file, (long)offer.ArenaBytes);
            file = null;
            return mapping;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            why = $"{path} cannot be opened: {ex.Message}";
            return null;
        }
        finally
        {
            file?.Dispose();
        }
    }

    /// <summary>Takes a count for a lease; false once the mapping is disposed.</summary>
    public bool TryAcquire() => RefCount.TryIncrement(ref _count);

    public void Release()
    {
        if (Interlocked.Decrement(ref _count) == 0)
        {
            _readView.SafeMemoryMappedViewHandle.ReleasePointer();
            _readView.Dispose();
            if (_writeView is not null)
            {
                _writeView.SafeMemoryMappedViewHandle.ReleasePointer();
                _writeView.Dispose();
            }

            _map.Dispose();
            _file.Dispose();
        }
    }

    public void Dispose() => Release();

    /// <summary>An object's bytes (or up to 2 GiB of them), read-only; faults their pages in first.</summary>
    public ReadOnlyMemory<byte> Read(long offset, int length)
    {
        CheckRange(offset, length);
        Populate(_read + offset, length, MadvPopulateRead);
        return length == 0 ? ReadOnlyMemory<byte>.Empty : new NativeSegment(_read + offset, length).Memory;
    }

    /// <summary>Where an in-place put writes; faults the pages in first, so the copy runs at memory speed.</summary>
    public Memory<byte> Write(long offset, int length)
    {
        CheckRange(offset, length);
        var write = WriteBase();
        Populate(write + offset, length, MadvPopulateWrite);
        return length == 0 ? Memory<byte>.Empty : new NativeSegment(write + offset, length).Memory;
    }

    private byte* WriteBase()
    {
        lock (_writeGate)
        {
            if (_writeView is null)
            {
                _writeView = _map.CreateViewAccessor(0, Length, MemoryMappedFileAccess.ReadWrite);
                _write = Acquire(_writeView);
            }

            return _write;
        }
    }

    private void CheckRange(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
        {
            throw new InvalidOperationException($"The worker named bytes {offset}..{offset + length} outside its {Length}-byte arena.");
        }
    }

    private static byte* Acquire(MemoryMappedViewAccessor view)
    {
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        return pointer + view.PointerOffset;
    }

    /// <summary>
    /// Maps a range's pages in one call rather than a fault per 4 KiB page (a third of a copy's time for a fresh
    /// mapping). Advice only: on kernels before 5.14 it fails and the pages fault in as they are touched.
    /// </summary>
    private static void Populate(byte* start, long length, int advice)
    {
        if (length < 64 * PageBytes)
        {
            return;
        }

        var first = (nint)start & ~(nint)(PageBytes - 1);
        _ = madvise(first, (nuint)((nint)start + (nint)length - first), advice);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint address, nuint length, int advice);
}
