using StackExchange.Redis;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>Redis GET and SET of one large value through StackExchange.Redis: what a user of a cache server would get instead.</summary>
internal static class RedisBaseline
{
    public const string Group = "redis";

    public const string Name = "redis";

    private const string Key = "bench-large";

    private const string TooLarge = "Redis caps strings at 512 MB (proto-max-bulk-len)";

    public static IEnumerable<TransferCase> Create(RedisServer redis)
    {
        var database = redis.Database;
        yield return new TransferCase(Group, Name, "get", redis.Probe, (size, ct) => GetTransferAsync(database, size, ct), RedisServer.MaxStringBytes, TooLarge);
        yield return new TransferCase(Group, Name, "put", redis.Probe, (size, _) => Task.FromResult(SetTransfer(database, size)), RedisServer.MaxStringBytes, TooLarge);
    }

    /// <summary>GET into the new array StackExchange.Redis returns.</summary>
    private static async Task<ITransfer> GetTransferAsync(IDatabase database, long size, CancellationToken cancellationToken)
    {
        using (var source = new NativeBuffer(size))
        {
            await database.StringSetAsync(Key, source.Memory).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return new DelegateTransfer(
            ct => DelegateTransfer.TimeAsync(async () =>
            {
                var value = (byte[]?)await database.StringGetAsync(Key).WaitAsync(ct).ConfigureAwait(false);
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
