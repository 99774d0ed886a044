namespace RaySharing.Testing;

/// <summary>A source stream for tests: read-only, not seekable; subclasses say what a read gives.</summary>
public abstract class ReadOnlyTestStream : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    /// <summary>Bytes given so far.</summary>
    public override long Position { get => Given; set => throw new NotSupportedException(); }

    protected long Given { get; set; }

    public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>A destination stream for tests: write-only, not seekable; subclasses say what a write does.</summary>
public abstract class WriteOnlyTestStream : Stream
{
    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public abstract override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default);

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>Gives <c>before</c> bytes, then signals <c>stalled</c> and gives nothing more until canceled: a writer stuck mid-transfer.</summary>
public sealed class StallingStream(int before, TaskCompletionSource stalled) : ReadOnlyTestStream
{
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Given >= before)
        {
            stalled.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        var count = (int)Math.Min(buffer.Length, before - Given);
        buffer.Span[..count].Fill(7);
        Given += count;
        return count;
    }
}
