using System.Runtime.InteropServices;

namespace RaySharing.Worker.Storage;

/// <summary>The libc calls the arena needs that .NET does not expose (Linux only).</summary>
internal static partial class NativeMethods
{
    /// <summary>Allocates a file's blocks: on tmpfs, the arena's pages, before any process writes them.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int fallocate(int fd, int mode, long offset, long length);
}
