using System.Buffers;
using RaySharing.Wire;

namespace RaySharing;

/// <summary>
/// An object's bytes held for reading in place (<see cref="RaySharingClient.GetLeaseAsync"/>). When
/// <see cref="IsZeroCopy"/>, they are the worker's own copy in shared memory, mapped read-only into this process,
/// and the object's range stays pinned until the lease is disposed: dispose it as soon as you are done, and do
/// not touch memory obtained from it afterwards: the range may hold another object by then, and once the client
/// is disposed too the mapping is gone and a read crashes the process. A lease that is never disposed is
/// released when the client's session ends.
/// </summary>
public sealed class ObjectLease : IDisposable, IAsyncDisposable
{
    private readonly ReadOnlySequence<byte> _bytes;
    private Action? _release;
    private Func<ValueTask>? _releaseAsync;
    private int _disposed;

    internal ObjectLease(ObjectRef objectRef, ReadOnlySequence<byte> bytes, bool isZeroCopy, Action? release, Func<ValueTask>? releaseAsync)
    {
        Ref = objectRef;
        _bytes = bytes;
        IsZeroCopy = isZeroCopy;
        _release = release;
        _releaseAsync = releaseAsync;
    }

    /// <summary>The object leased.</summary>
    public ObjectRef Ref { get; }

    /// <summary>The object's size in bytes.</summary>
    public long Length => _bytes.Length;

    /// <summary>True when the bytes are the worker's shared memory itself; false when they were copied into this process.</summary>
    public bool IsZeroCopy { get; }

    /// <summary>The bytes, of any size (in segments of under 2 GiB).</summary>
    /// <exception cref="ObjectDisposedException">The lease was disposed.</exception>
    public ReadOnlySequence<byte> Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            return _bytes;
        }
    }

    /// <summary>The bytes as one block.</summary>
    /// <exception cref="ObjectDisposedException">The lease was disposed.</exception>
    /// <exception cref="InvalidOperationException">The object is 2 GiB or larger; read <see cref="Bytes"/>.</exception>
    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            var bytes = Bytes;
            return bytes.IsSingleSegment
                ? bytes.First
                : throw new InvalidOperationException($"Object {Ref.Id} is {Length} bytes, more than one block spans; read Bytes.");
        }
    }

    /// <summary>
    /// Reads every byte once and checks them against the CRC-32 the object was sealed with (<see cref="ObjectRef.Checksum"/>),
    /// at about memory speed on one core. Gets check the bytes they copy; a zero-copy lease leaves it to you, since
    /// the worker checked the bytes when it sealed the object and the mapping is read-only.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The lease was disposed.</exception>
    /// <exception cref="ChecksumMismatchException">The bytes do not match the checksum.</exception>
    public void VerifyChecksum()
    {
        var crc = 0u;
        foreach (var block in Bytes)
        {
            crc = Checksums.Append(crc, block.Span);
        }

        if (crc != Ref.Checksum)
        {
            throw new ChecksumMismatchException(
                $"The leased bytes of object {Ref.Id} have checksum {crc:x8}, not the {Ref.Checksum:x8} it was sealed with.", Ref.Id);
        }
    }

    /// <summary>
    /// Unpins the object without waiting for the worker: a range freed meanwhile returns to the store a moment
    /// later (use <see cref="DisposeAsync"/> to wait for it). Idempotent; never throws.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _releaseAsync = null;
            Interlocked.Exchange(ref _release, null)?.Invoke();
        }
    }

    /// <summary>
    /// Unpins the object and waits until the worker has dropped the pin, so room a freed object held is back in
    /// the store when this completes. Idempotent; never throws (a worker that is gone drops the pin with the session).
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        _release = null;
        return Interlocked.Exchange(ref _releaseAsync, null)?.Invoke() ?? ValueTask.CompletedTask;
    }
}
