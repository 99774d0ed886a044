using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// The raw TCP baseline's server side, in the benchmark's server process: per request, a 9-byte header
/// (an opcode and a little-endian byte count), then the bytes. <see cref="Get"/>: the server sends that many
/// bytes from its warm source. <see cref="Put"/>: it receives them into its warm sink and answers one byte.
/// </summary>
internal sealed class RawSocketServer : IAsyncDisposable
{
    public const string PortPrefix = "socket ";

    public const byte Get = (byte)'G';

    public const byte Put = (byte)'P';

    public const int HeaderBytes = 9;

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _accepting;

    /// <summary>Listens on a free port of <paramref name="address"/> (loopback when null).</summary>
    public RawSocketServer(IPAddress? address = null)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address ?? IPAddress.Loopback, 0));
        _listener.Listen();
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        try
        {
            await _accepting.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        _stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            var connection = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            _ = ServeAsync(connection);
        }
    }

    private async Task ServeAsync(Socket connection)
    {
        using var _ = connection;
        connection.NoDelay = true;
        var header = new byte[HeaderBytes];
        try
        {
            while (await ReceiveExactlyAsync(connection, header, _stopping.Token).ConfigureAwait(false))
            {
                var size = checked((int)BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(1)));
                switch (header[0])
                {
                    case Get:
                        await SendAllAsync(connection, ServerBuffers.Source.Memory[..size], _stopping.Token).ConfigureAwait(false);
                        break;
                    case Put:
                        if (!await ReceiveExactlyAsync(connection, ServerBuffers.Sink.Memory[..size], _stopping.Token).ConfigureAwait(false))
                        {
                            return;
                        }

                        await SendAllAsync(connection, header.AsMemory(0, 1), _stopping.Token).ConfigureAwait(false);
                        break;
                    default:
                        return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException)
        {
            // The client went away, or the process is stopping.
        }
    }

    /// <summary>Fills <paramref name="buffer"/>; false when the peer closed before sending anything.</summary>
    public static async Task<bool> ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var received = 0;
        while (received < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer[received..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return received == 0 ? false : throw new SocketException((int)SocketError.ConnectionReset);
            }

            received += n;
        }

        return true;
    }

    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var n = await socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[n..];
        }
    }
}
