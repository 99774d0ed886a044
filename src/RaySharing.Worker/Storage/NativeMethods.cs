using System.Runtime.InteropServices;

namespace RaySharing.Worker.Storage;

/// <summary>The libc calls the arena needs that .NET does not expose (Linux only).</summary>
internal static partial class NativeMethods
{
    /// <summary>Allocates a file's blocks: on tmpfs, the arena's pages, before any process writes them.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int fallocate(int fd, int mode, long offset, long length);

    internal const int MadvPopulateRead = 22;

    /// <summary>Advice on a mapped range; MADV_POPULATE_READ maps its pages in one call (Linux 5.14+; advice only before).</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int madvise(nint address, nuint length, int advice);
}
