using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;

namespace RaySharing.Worker.Storage;

/// <summary>
/// The worker's spill files: one per spilled object, named by its id, in a directory of its own
/// (<c>raysharing-spill-&lt;pid&gt;-&lt;random&gt;</c>) under the configured spill directory. The directory holds a
/// <c>lock</c> file the worker keeps open with an exclusive lock (flock) for its lifetime: a worker that starts removes
/// every sibling directory whose lock it can take, since its worker is gone (a crash leaves no lock behind, the
/// kernel drops it with the process). Files are plain bytes; a restore checks their length and the object's CRC-32.
/// </summary>
internal sealed unsafe class SpillFiles : IDisposable
{
    public const string DirectoryPrefix = "raysharing-spill-";

    public const string LockFileName = "lock";

    private const int ChunkBytes = 16 << 20;

    private readonly FileStream _lock;
    private readonly ILogger _logger;

    /// <summary>Makes this worker's spill directory under <paramref name="parent"/> (created if missing), first removing those of dead workers.</summary>
    /// <exception cref="ArgumentException">The directory cannot be made or written (names <c>SpillDirectory</c>).</exception>
    public SpillFiles(string parent, ILogger logger)
    {
        _logger = logger;
        var path = System.IO.Path.Combine(parent, $"{DirectoryPrefix}{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
        try
        {
            Directory.CreateDirectory(parent);
            RemoveStale(parent, logger);
            var lockOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None };
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(path);
            }
            else
            {
                // Objects' bytes: readable by the worker's user only, as the arena is.
                Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                lockOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            // FileShare.None: on Unix .NET takes an exclusive flock, which another worker's RemoveStale tries to take.
            _lock = new FileStream(System.IO.Path.Combine(path, LockFileName), lockOptions);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDeleteDirectory(path);
            throw new ArgumentException($"The spill directory {parent} cannot be used ({ex.Message}); give a writable directory in SpillDirectory (--spill-dir), or turn spilling off with SpillCapacityBytes 0.", "SpillDirectory", ex);
        }

        Path = path;
    }

    /// <summary>This worker's own spill directory.</summary>
    public string Path { get; }

    public string FileOf(ObjectId id) => System.IO.Path.Combine(Path, $"{id}.spill");

    /// <summary>
    /// Writes <paramref name="length"/> bytes at <paramref name="data"/> to the object's file; on failure nothing is
    /// left behind. The bytes go to a <c>.partial</c> file renamed once complete, so a file under the object's name is
    /// always whole (an operator or a test that sees it can read it).
    /// </summary>
    public void Write(ObjectId id, byte* data, long length)
    {
        var path = FileOf(id);
        var partial = path + ".partial";
        try
        {
            using (var file = File.OpenHandle(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None, length))
            {
                for (long position = 0; position < length; position += ChunkBytes)
                {
                    var chunk = (int)Math.Min(ChunkBytes, length - position);
                    RandomAccess.Write(file, new ReadOnlySpan<byte>(data + position, chunk), position);
                }
            }

            File.Move(partial, path, overwrite: false);
        }
        catch
        {
            TryDelete(partial);
            throw;
        }
    }

    /// <summary>
    /// Reads the object's file into <paramref name="destination"/>; null when its length and CRC-32 are right, else
    /// what is wrong with it (missing, unreadable, truncated, corrupt).
    /// </summary>
    public string? TryRead(ObjectId id, byte* destination, long length, uint checksum)
    {
        var path = FileOf(id);
        try
        {
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var fileLength = RandomAccess.GetLength(file);
            if (fileLength != length)
            {
                return $"the spill file {path} has {fileLength} bytes, not {length}";
            }

            var crc = new RunningCrc32();
            for (long position = 0; position < length;)
            {
                var span = new Span<byte>(destination + position, (int)Math.Min(ChunkBytes, length - position));
                var read = RandomAccess.Read(file, span, position);
                if (read == 0)
                {
                    return $"the spill file {path} ended after {position} of {length} bytes";
                }

                crc.Append(span[..read]);
                position += read;
            }

            var actual = crc.Current;
            return actual == checksum ? null : $"the spill file {path} has checksum {actual:x8}, not the object's {checksum:x8}: it was damaged on disk";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"the spill file {path} cannot be read ({ex.Message})";
        }
    }

    public void Delete(ObjectId id) => TryDelete(FileOf(id));

    /// <summary>Removes this worker's directory and every file in it.</summary>
    public void Dispose()
    {
        _lock.Dispose();
        TryDeleteDirectory(Path);
    }

    /// <summary>Removes the spill directories under <paramref name="parent"/> of workers that are gone; returns how many.</summary>
    internal static int RemoveStale(string parent, ILogger logger)
    {
        var removed = 0;
        foreach (var directory in Directory.EnumerateDirectories(parent, DirectoryPrefix + "*"))
        {
            if (!IsAbandoned(directory))
            {
                continue;
            }

            var files = Directory.EnumerateFiles(directory).Count(f => f.EndsWith(".spill", StringComparison.Ordinal));
            if (TryDeleteDirectory(directory))
            {
                WorkerLog.StaleSpillDirectoryRemoved(logger, directory, files);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>True when no live worker holds the directory's lock; one still being made (no lock yet) is abandoned only if its process is gone.</summary>
    private static bool IsAbandoned(string directory)
    {
        try
        {
            using var held = new FileStream(System.IO.Path.Combine(directory, LockFileName), FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (FileNotFoundException)
        {
            var name = System.IO.Path.GetFileName(directory)[DirectoryPrefix.Length..];
            var dash = name.IndexOf('-', StringComparison.Ordinal);
            return dash > 0 && int.TryParse(name.AsSpan(0, dash), System.Globalization.CultureInfo.InvariantCulture, out var pid)
                && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Locked by its live worker, or another user's.
            return false;
        }
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
            // The directory went first: the worker is stopping, and its whole directory is gone already.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            WorkerLog.SpillFileNotDeleted(_logger, path, ex.Message);
        }
    }

    private static bool TryDeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
