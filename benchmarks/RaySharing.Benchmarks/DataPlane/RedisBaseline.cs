using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// Redis GET and SET of one large value through StackExchange.Redis: what a user of a cache server would get instead.
/// Beside them, for reference, the same commands over a bare socket (RESP by hand, the value read straight into a warm
/// buffer): what redis-server itself delivers, apart from the client library's own cost.
/// </summary>
internal static class RedisBaseline
{
    public const string Group = "redis";

    public const string Name = "redis";

    public const string RawName = "redis-raw";

    private const string Key = "bench-large";

    private const string TooLarge = "Redis caps strings at 512 MB (proto-max-bulk-len)";

    private static readonly byte[] Crlf = "\r\n"u8.ToArray();

    public static IEnumerable<TransferCase> Create(RedisServer redis)
    {
        var database = redis.Database;
        yield return new TransferCase(Group, Name, "get", redis.Probe, (size, ct) => GetTransferAsync(database, size, ct), RedisServer.MaxStringBytes, TooLarge);
        yield return new TransferCase(Group, Name, "put", redis.Probe, (size, _) => Task.FromResult(SetTransfer(database, size)), RedisServer.MaxStringBytes, TooLarge);
        yield return new TransferCase(Group, RawName, "get", redis.Probe, (size, ct) => RawTransferAsync(database, redis.Port, get: true, size, ct), RedisServer.MaxStringBytes, TooLarge);
        yield return new TransferCase(Group, RawName, "put", redis.Probe, (size, ct) => RawTransferAsync(database, redis.Port, get: false, size, ct), RedisServer.MaxStringBytes, TooLarge);
    }

    /// <summary>
    /// GET into a warm buffer reused every time, or SET from a warm native buffer, over a socket of its own: the request
    /// written by hand, the bulk reply's header parsed and its bytes received straight into the buffer.
    /// </summary>
    private static async Task<ITransfer> RawTransferAsync(IDatabase database, int port, bool get, long size, CancellationToken cancellationToken)
    {
        var source = new NativeBuffer(size);
        await database.StringSetAsync(Key, source.Memory).WaitAsync(cancellationToken).ConfigureAwait(false);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken).ConfigureAwait(false);
        var request = Encoding.ASCII.GetBytes(get
            ? $"*2\r\n$3\r\nGET\r\n${Key.Length}\r\n{Key}\r\n"
            : string.Create(CultureInfo.InvariantCulture, $"*3\r\n$3\r\nSET\r\n${Key.Length}\r\n{Key}\r\n${size}\r\n"));
        var replyHeader = Encoding.ASCII.GetBytes(get ? string.Create(CultureInfo.InvariantCulture, $"${size}\r\n") : "+OK\r\n");
        var received = new byte[replyHeader.Length];
        var value = get ? new NativeBuffer(size) : null;
        var trailer = new byte[2];
        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                await RawSocketServer.SendAllAsync(socket, request, ct).ConfigureAwait(false);
                if (!get)
                {
                    await RawSocketServer.SendAllAsync(socket, source.Memory, ct).ConfigureAwait(false);
                    await RawSocketServer.SendAllAsync(socket, Crlf, ct).ConfigureAwait(false);
                }

                await RawSocketServer.ReceiveExactlyAsync(socket, received, ct).ConfigureAwait(false);
                if (!received.AsSpan().SequenceEqual(replyHeader))
                {
                    throw new InvalidOperationException($"redis-server answered '{Encoding.ASCII.GetString(received)}' instead of '{Encoding.ASCII.GetString(replyHeader)}'.");
                }

                if (value is not null)
                {
                    await RawSocketServer.ReceiveExactlyAsync(socket, value.Memory, ct).ConfigureAwait(false);
                    await RawSocketServer.ReceiveExactlyAsync(socket, trailer, ct).ConfigureAwait(false);
                }
            }),
            async () =>
            {
                socket.Dispose();
                source.Free();
                value?.Free();
                await database.KeyDeleteAsync(Key).ConfigureAwait(false);
            });
    }

    /// <summary>
    /// GET with StringGetLeaseAsync: the value in pooled memory the client library reuses (its fastest get, no new
    /// array), the counterpart of RaySharing's gets into a warm buffer.
    /// </summary>
    private static async Task<ITransfer> GetTransferAsync(IDatabase database, long size, CancellationToken cancellationToken)
    {
        using (var source = new NativeBuffer(size))
        {
            await database.StringSetAsync(Key, source.Memory).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                using var value = await database.StringGetLeaseAsync(Key).WaitAsync(ct).ConfigureAwait(false);
                if (value?.Length != size)
                {
                    throw new InvalidOperationException($"A Redis GET returned {value?.Length} bytes instead of {size}.");
                }
            }),
            async () => await database.KeyDeleteAsync(Key).ConfigureAwait(false));
    }

    /// <summary>SET from a warm native buffer, overwriting the same key each time.</summary>
    private static ITransfer SetTransfer(IDatabase database, long size)
    {
        var source = new NativeBuffer(size);
        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                if (!await database.StringSetAsync(Key, source.Memory).WaitAsync(ct).ConfigureAwait(false))
                {
                    throw new InvalidOperationException("A Redis SET was refused.");
                }
            }),
            async () =>
            {
                source.Free();
                await database.KeyDeleteAsync(Key).ConfigureAwait(false);
            });
    }
}
