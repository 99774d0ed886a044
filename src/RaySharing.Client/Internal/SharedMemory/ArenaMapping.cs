using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;
using RaySharing.Protocol.V1;
using RaySharing.Wire;

namespace RaySharing.Internal.SharedMemory;

/// <summary>
/// The worker's arena as this process maps it: read-only for gets and leases, and, from the first in-place
/// put, read-write too. Counted: each lease holds the mapping, so disposing it (the session was replaced, the
/// client disposed) unmaps only when the last lease is gone.
/// </summary>
internal sealed unsafe class ArenaMapping : IDisposable
{
    private const int SecretOffset = 32;
    private const int SecretBytes = 32;
    private const int PageBytes = 4096;

    private readonly SafeFileHandle _file;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _readView;
    private readonly byte* _read;
    private readonly Lock _writeGate = new();
    private MemoryMappedViewAccessor? _writeView;
    private byte* _write;

    private int _count = 1;
    private int _disposed;

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

    /// <summary>Drops the mapping's own count (once, however often it is called): unmapped when no lease holds it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Release();
        }
    }

    /// <summary>
    /// An object's bytes (or up to 2 GiB of them), read-only. Pages fault in as they are first touched: on this
    /// project's machines that first touch costs the same with or without madvise(MADV_POPULATE_*), so none is made.
    /// </summary>
    public ReadOnlyMemory<byte> Read(long offset, int length)
    {
        CheckRange(offset, length);
        return length == 0 ? ReadOnlyMemory<byte>.Empty : new NativeSegment(_read + offset, length).Memory;
    }

    /// <summary>Where an in-place put writes.</summary>
    public Memory<byte> Write(long offset, int length)
    {
        CheckRange(offset, length);
        var write = WriteBase();
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

}
