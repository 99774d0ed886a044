using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using RaySharing.Worker.Diagnostics;

namespace RaySharing.Worker.Storage;

/// <summary>
/// The memory objects live in: one file in <c>/dev/shm</c>, mapped by the worker and, on the same host, by
/// its clients. The file is unlinked as soon as it is mapped, so no crash ever leaves it behind; a same-host
/// client opens it through <c>/proc/&lt;worker pid&gt;/fd/&lt;fd&gt;</c>, which only the worker's own user
/// (or root) may, and proves it did by reading the random secret in the arena's first page. Its blocks are
/// allocated up front (fallocate), so a write never meets a full tmpfs (which would be SIGBUS) and first writes
/// do not pay for fresh pages. Where there is no room in <c>/dev/shm</c>, or no <c>/dev/shm</c>, the arena is
/// private memory and same-host sharing is off.
/// </summary>
internal sealed unsafe class SharedArena : IDisposable
{
    /// <summary>The first page: magic, layout version, data start, data length and the secret.</summary>
    public const int HeaderBytes = 4096;

    public const int SecretBytes = 32;

    private static ReadOnlySpan<byte> Magic => "RSARENA1"u8;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SafeFileHandle? _file;
    private readonly byte* _base;
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(SecretBytes);

    // Accesses in flight, plus one for the arena itself until it is disposed: the mapping goes when this reaches zero.
    private int _users = 1;

    private SharedArena(MemoryMappedFile map, SafeFileHandle? file, long length)
    {
        _map = map;
        _file = file;
        Length = length;
        _view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;

        var header = new Span<byte>(_base, HeaderBytes);
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 1);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], HeaderBytes);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], length - HeaderBytes);
        _secret.CopyTo(header[32..]);
    }

    /// <summary>The whole mapping, header page included.</summary>
    public long Length { get; }

    /// <summary>Where objects' bytes start: after the header page.</summary>
    public long DataStart => HeaderBytes;

    /// <summary>True when same-host clients can map this arena (it lives in <c>/dev/shm</c>).</summary>
    public bool IsShared => _file is not null;

    /// <summary>The descriptor same-host clients open through <c>/proc/&lt;pid&gt;/fd/</c>; -1 when not shared.</summary>
    public int FileDescriptor => _file is null ? -1 : (int)_file.DangerousGetHandle();

    /// <summary>The secret a same-host client reads from the header to prove it mapped this arena.</summary>
    public ReadOnlySpan<byte> Secret => _secret;

    /// <summary>
    /// Creates an arena of <paramref name="dataBytes"/> usable bytes after the header page, shared through a file in
    /// <paramref name="directory"/> (a tmpfs), or private when it is null.
    /// </summary>
    public static SharedArena Create(long dataBytes, string? directory, ILogger logger)
    {
        var length = HeaderBytes + dataBytes;
        if (directory is not null && !(OperatingSystem.IsLinux() && Directory.Exists(directory)))
        {
            WorkerLog.ArenaNotShared(logger, length, $"shared memory needs Linux and the directory {directory}");
        }
        else if (directory is not null && Unaffordable(length, directory) is { } why)
        {
            WorkerLog.ArenaNotShared(logger, length, why);
        }
        else if (directory is not null)
        {
            var path = Path.Combine(directory, $"raysharing-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
            SafeFileHandle? file = null;
            try
            {
                // Shared with FileShare.ReadWrite: on Unix .NET takes a shared flock, which clients' opens must not conflict with.
                using (var stream = new FileStream(path, new FileStreamOptions
                       {
                           Mode = FileMode.CreateNew,
                           Access = FileAccess.ReadWrite,
                           Share = FileShare.ReadWrite,
                           UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                       }))
                {
                    file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
                }

                var fd = (int)file.DangerousGetHandle();
                if (NativeMethods.fallocate(fd, 0, 0, length) != 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    WorkerLog.ArenaNotShared(logger, length, $"{directory} cannot hold it ({Marshal.GetPInvokeErrorMessage(errno)}; {new DriveInfo(directory).AvailableFreeSpace} bytes free)");
                }
                else
                {
                    var map = MemoryMappedFile.CreateFromFile(file, null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
                    var arena = new SharedArena(map, file, length);
                    file = null;
                    return arena;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                WorkerLog.ArenaNotShared(logger, length, ex.Message);
            }
            finally
            {
                // Unlinked at once: the mappings and the descriptor keep the memory, and nothing is left after a crash.
                File.Delete(path);
                file?.Dispose();
            }
        }

        try
        {
            return new SharedArena(MemoryMappedFile.CreateNew(null, length, MemoryMappedFileAccess.ReadWrite), file: null, length);
        }
        catch (IOException ex)
        {
            throw new ArgumentException($"The object store's {length}-byte arena cannot be mapped ({ex.Message}); lower StoreCapacityBytes (--capacity-mb).", "StoreCapacityBytes", ex);
        }
    }

    /// <summary>
    /// Why an arena of <paramref name="length"/> bytes must not be allocated in <paramref name="directory"/> now, or
    /// null. A tmpfs arena is RAM taken at once: allocating more than the free RAM would not fail, it would wake the
    /// OOM killer, which may kill any process, another worker included. So the worker asks first and keeps some
    /// room for everything else.
    /// </summary>
    private static string? Unaffordable(long length, string directory)
    {
        const long HeadroomBytes = 512L << 20;
        var free = new DriveInfo(directory).AvailableFreeSpace;
        if (length > free)
        {
            return $"{directory} has {free} bytes free";
        }

        var available = AvailableMemoryBytes();
        return available is { } bytes && length > bytes - HeadroomBytes
            ? $"the machine has {bytes} bytes of memory available (MemAvailable) and keeps {HeadroomBytes} for everything else; lower StoreCapacityBytes (--capacity-mb)"
            : null;
    }

    private static long? AvailableMemoryBytes()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line["MemAvailable:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The memory at <paramref name="offset"/> (from the start of the mapping). Only inside an <see cref="Access"/>.</summary>
    public byte* At(long offset) => _base + offset;

    /// <summary>
    /// Holds the mapping while the caller touches arena memory, so that a worker stopping under a call in flight
    /// (a seal checking a huge object, a stream still sending) unmaps only after it, never under it.
    /// </summary>
    /// <exception cref="Ownership.WorkerException">UNAVAILABLE: the arena is already closed.</exception>
    public ArenaAccess Access() => RaySharing.Wire.RefCount.TryIncrement(ref _users) ? new ArenaAccess(this) : throw Ownership.WorkerErrors.Stopping();

    /// <summary>Closes the arena: unmapped now, or when the last access in flight ends.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Exit();
        }
    }

    internal void Exit()
    {
        if (Interlocked.Decrement(ref _users) == 0)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
            _file?.Dispose();
        }
    }

    private int _disposed;
}

/// <summary>An access to arena memory in flight (<see cref="SharedArena.Access"/>); dispose it when done.</summary>
internal readonly struct ArenaAccess(SharedArena arena) : IDisposable
{
    public void Dispose() => arena.Exit();
}
