namespace RaySharing.Worker.Storage;

/// <summary>
/// A reader's hold on an object's bytes: its range is not reused and the arena is not unmapped until
/// <see cref="Dispose"/>.
/// </summary>
internal readonly struct BytesPin(StoredBytes bytes, ArenaAccess access) : IDisposable
{
    public void Dispose()
    {
        access.Dispose();
        bytes.Unpin();
    }
}
