namespace RaySharing.Worker.Storage;

/// <summary>A reader's hold on an object's range, dropped by <see cref="Dispose"/>.</summary>
internal readonly struct BytesPin(StoredBytes bytes) : IDisposable
{
    public void Dispose() => bytes.Unpin();
}
