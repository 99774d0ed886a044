using System.Globalization;
using System.Text.Json;
using RaySharing.Worker.Ownership;
using StackExchange.Redis;

namespace RaySharing.Worker.Cluster;

/// <summary>Where a holder lives according to the directory, and whether its worker is alive.</summary>
/// <param name="WorkerId">The worker that hosts (or hosted) the holder.</param>
/// <param name="Incarnation">The holder's incarnation.</param>
/// <param name="Lifetime">Its lifetime, as created.</param>
/// <param name="WorkerAlive">False when the worker's registration lapsed: the holder died with it.</param>
internal readonly record struct HolderPlacement(ObjectId WorkerId, ObjectId Incarnation, HolderLifetimeKind Lifetime, bool WorkerAlive)
{
    private const int HexLength = 32;

    public string Encode() => $"{WorkerId}{Incarnation}{(Lifetime == HolderLifetimeKind.Session ? 's' : 'd')}";

    public static HolderPlacement Decode(string value, bool workerAlive)
    {
        if (value.Length != (2 * HexLength) + 1
            || !ObjectId.TryParse(value.AsSpan(0, HexLength), out var worker)
            || !ObjectId.TryParse(value.AsSpan(HexLength, HexLength), out var incarnation)
            || value[^1] is not ('s' or 'd'))
        {
            throw new ClusterDirectoryException($"The directory holds a holder entry that is not one of ours: '{value}'. Is another program writing under this cluster's keys?");
        }

        return new(worker, incarnation, value[^1] == 's' ? HolderLifetimeKind.Session : HolderLifetimeKind.Detached, workerAlive);
    }
}

/// <summary>A worker as it registered itself in the directory.</summary>
/// <param name="Id">Its worker id (a new one at every start).</param>
/// <param name="Address">Its gRPC address, as written into envelopes.</param>
/// <param name="ChannelPort">Its channel's TCP port on the host of <paramref name="Address"/>; 0 when it serves no channel.</param>
/// <param name="StartedAt">When it started (its own clock).</param>
internal sealed record WorkerRecord(ObjectId Id, string Address, int ChannelPort, DateTimeOffset StartedAt)
{
    public string ToJson() => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["id"] = Id.ToString(),
        ["address"] = Address,
        ["channel_port"] = ChannelPort,
        ["started"] = StartedAt.ToString("O", CultureInfo.InvariantCulture),
    });

    public static WorkerRecord FromJson(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            return new WorkerRecord(
                ObjectId.Parse(root.GetProperty("id").GetString() ?? string.Empty),
                root.GetProperty("address").GetString() ?? string.Empty,
                root.GetProperty("channel_port").GetInt32(),
                DateTimeOffset.Parse(root.GetProperty("started").GetString() ?? string.Empty, CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
        {
            throw new ClusterDirectoryException($"The directory holds a worker record that is not one of ours: '{json}'. Is another program writing under this cluster's keys?", ex);
        }
    }
}

/// <summary>The directory could not be used: unreachable, or holding something that is not ours.</summary>
internal sealed class ClusterDirectoryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The cluster's directory in Redis (<see cref="ClusterKeys"/> has the layout). Every change that must be atomic
/// across workers is one Lua script, so two workers asking at once get one answer. Thread-safe.
/// </summary>
internal sealed class RedisDirectory : IAsyncDisposable
{
    // Registers (or renews) a worker: its record with the lease as expiry, its id in the member set, and the
    // directory's epoch, created when missing. Returns the epoch.
    private static readonly LuaScript Register = LuaScript.Prepare("""
        redis.call('SET', @record, @json, 'PX', @leaseMs)
        redis.call('SADD', @workers, @id)
        redis.call('SET', @epoch, @newEpoch, 'NX')
        return redis.call('GET', @epoch)
        """);

    // Get-or-create of a holder: the live entry if there is one, else the candidate. Returns {created, entry}.
    private static readonly LuaScript Claim = LuaScript.Prepare("""
        local current = redis.call('HGET', @holders, @field)
        if current and redis.call('EXISTS', @workerPrefix .. string.sub(current, 1, 32)) == 1 then
          return {0, current}
        end
        redis.call('HSET', @holders, @field, @candidate)
        return {1, @candidate}
        """);

    // Where a holder is: nil, or {alive, entry}.
    private static readonly LuaScript Find = LuaScript.Prepare("""
        local current = redis.call('HGET', @holders, @field)
        if not current then
          return false
        end
        return {redis.call('EXISTS', @workerPrefix .. string.sub(current, 1, 32)), current}
        """);

    // Removes a holder's entry only if it still names this incarnation (a later one may have replaced it).
    private static readonly LuaScript Remove = LuaScript.Prepare("""
        if redis.call('HGET', @holders, @field) == @entry then
          return redis.call('HDEL', @holders, @field)
        end
        return 0
        """);

    private readonly ConnectionMultiplexer _redis;
    private readonly IDatabase _db;

    private RedisDirectory(ConnectionMultiplexer redis, ClusterKeys keys)
    {
        _redis = redis;
        _db = redis.GetDatabase();
        Keys = keys;
    }

    public ClusterKeys Keys { get; }

    /// <summary>Connects to the directory named by <paramref name="configuration"/> (a StackExchange.Redis configuration string).</summary>
    /// <exception cref="ClusterDirectoryException">Redis cannot be reached within <paramref name="timeout"/>.</exception>
    public static async Task<RedisDirectory> ConnectAsync(string configuration, string clusterName, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var options = ConfigurationOptions.Parse(configuration);
        // A refused first connection fails the start at once; later losses are reconnected in the background.
        options.AbortOnConnectFail = true;
        options.ConnectTimeout = (int)Math.Min(timeout.TotalMilliseconds, int.MaxValue);
        options.ConnectRetry = 1;
        // A directory call must fail well inside a lease, so the caller can retry several times before its
        // registration lapses; and fail at once while disconnected rather than wait in the library's backlog.
        options.SyncTimeout = options.AsyncTimeout = (int)Math.Clamp(timeout.TotalMilliseconds / 4, 250, 5000);
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ClientName ??= "raysharing-worker";
        // After a lost connection, try again at a steady pace well inside a lease: the library's default backs off
        // exponentially, which after a Redis restart can leave a worker reconnecting until its lease is gone.
        options.ReconnectRetryPolicy = new LinearRetry((int)Math.Clamp(timeout.TotalMilliseconds / 10, 50, 1000));
        ConnectionMultiplexer? redis = null;
        try
        {
            redis = await ConnectionMultiplexer.ConnectAsync(options).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            if (!redis.IsConnected)
            {
                throw new ClusterDirectoryException($"Redis at {Describe(options)} did not answer within {timeout.TotalSeconds:0.#} s.");
            }

            var directory = new RedisDirectory(redis, new ClusterKeys(clusterName));
            redis = null;
            return directory;
        }
        catch (Exception ex) when (ex is TimeoutException or RedisException)
        {
            throw new ClusterDirectoryException($"Redis at {Describe(options)} {Why(ex)}.", ex);
        }
        finally
        {
            if (redis is not null)
            {
                await redis.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The endpoints a configuration names, for messages: never its password.</summary>
    public static string Describe(ConfigurationOptions options) => string.Join(",", options.EndPoints.Select(e => e switch { System.Net.DnsEndPoint d => $"{d.Host}:{d.Port}", _ => e.ToString() }));

    /// <summary>Describes a configuration string for messages without its password (the raw string when it does not parse).</summary>
    public static string Describe(string configuration)
    {
        try
        {
            return Describe(ConfigurationOptions.Parse(configuration));
        }
        catch (ArgumentException)
        {
            return "(a configuration that does not parse)";
        }
    }

    /// <summary>What went wrong connecting, in a user's terms: a refused password is not an unreachable server.</summary>
    private static string Why(Exception ex)
    {
        if (ex is RedisConnectionException { FailureType: ConnectionFailureType.AuthenticationFailure }
            || ex.Message.Contains("NOAUTH", StringComparison.Ordinal) || ex.Message.Contains("WRONGPASS", StringComparison.Ordinal)
            || ex.InnerException?.Message.Contains("NOAUTH", StringComparison.Ordinal) == true
            || ex.InnerException?.Message.Contains("WRONGPASS", StringComparison.Ordinal) == true)
        {
            return "refused the connection's credentials (it needs a password, or this one is wrong: give it as host:port,password=...)";
        }

        // StackExchange.Redis's message goes on to advise its own connection settings; its first sentence is the news.
        return "cannot be reached: " + ex.Message.Split(". ", 2)[0].TrimEnd('.');
    }

    /// <summary>Registers or renews <paramref name="record"/> for <paramref name="lease"/>; returns the directory's epoch.</summary>
    public async Task<string> RegisterAsync(WorkerRecord record, TimeSpan lease, string newEpoch)
    {
        var result = await _db.ScriptEvaluateAsync(Register, new
        {
            record = (RedisKey)Keys.Worker(record.Id),
            json = record.ToJson(),
            leaseMs = (long)lease.TotalMilliseconds,
            workers = Keys.Workers,
            id = record.Id.ToString(),
            epoch = Keys.Epoch,
            newEpoch,
        }).ConfigureAwait(false);
        return (string?)result ?? newEpoch;
    }

    /// <summary>Drops this worker's record at a clean stop, so others see it gone at once rather than a lease later.</summary>
    public async Task UnregisterAsync(ObjectId workerId)
    {
        await _db.KeyDeleteAsync(Keys.Worker(workerId)).ConfigureAwait(false);
        await _db.SetRemoveAsync(Keys.Workers, workerId.ToString()).ConfigureAwait(false);
    }

    /// <summary>
    /// Get-or-create: the holder's placement if a live worker hosts it, else <paramref name="candidate"/>, now recorded.
    /// <c>Created</c> says which.
    /// </summary>
    public async Task<(HolderPlacement Placement, bool Created)> ClaimHolderAsync(HolderKey key, HolderPlacement candidate)
    {
        var result = (RedisResult[])(await _db.ScriptEvaluateAsync(Claim, new
        {
            holders = Keys.Holders,
            field = ClusterKeys.HolderField(key),
            workerPrefix = Keys.WorkerPrefix,
            candidate = candidate.Encode(),
        }).ConfigureAwait(false))!;
        var created = (int)result[0] == 1;
        return (HolderPlacement.Decode((string)result[1]!, workerAlive: true), created);
    }

    /// <summary>Where the holder lives or lived; null when the directory has never heard of it (or it was killed).</summary>
    public async Task<HolderPlacement?> FindHolderAsync(HolderKey key)
    {
        var result = await _db.ScriptEvaluateAsync(Find, new
        {
            holders = Keys.Holders,
            field = ClusterKeys.HolderField(key),
            workerPrefix = Keys.WorkerPrefix,
        }).ConfigureAwait(false);
        if (result.IsNull)
        {
            return null;
        }

        var pair = (RedisResult[])result!;
        return HolderPlacement.Decode((string)pair[1]!, workerAlive: (int)pair[0] == 1);
    }

    /// <summary>Every holder entry of the directory whose namespace is <paramref name="ns"/>, with its worker's liveness.</summary>
    public async Task<IReadOnlyList<(HolderKey Key, HolderPlacement Placement)>> ListHoldersAsync(string ns)
    {
        var entries = await _db.HashGetAllAsync(Keys.Holders).ConfigureAwait(false);
        var found = new List<(HolderKey, HolderPlacement)>();
        foreach (var entry in entries)
        {
            var field = System.Text.Encoding.UTF8.GetString((byte[])entry.Name!);
            var split = field.IndexOf('\0', StringComparison.Ordinal);
            if (split < 0 || field[..split] != ns)
            {
                continue;
            }

            found.Add((new HolderKey(ns, field[(split + 1)..]), HolderPlacement.Decode((string)entry.Value!, workerAlive: true)));
        }

        var alive = await AliveAsync(found.Select(f => f.Item2.WorkerId).Distinct().ToList()).ConfigureAwait(false);
        return found.Select(f => (f.Item1, f.Item2 with { WorkerAlive = alive.Contains(f.Item2.WorkerId) })).ToList();
    }

    /// <summary>Removes the holder's entry if it still names <paramref name="placement"/> (after a kill or its session's end).</summary>
    public async Task RemoveHolderAsync(HolderKey key, HolderPlacement placement) =>
        await _db.ScriptEvaluateAsync(Remove, new
        {
            holders = Keys.Holders,
            field = ClusterKeys.HolderField(key),
            entry = placement.Encode(),
        }).ConfigureAwait(false);

    /// <summary>A live worker's record; null when it is dead (or never was).</summary>
    public async Task<WorkerRecord?> FindWorkerAsync(ObjectId workerId)
    {
        var json = await _db.StringGetAsync(Keys.Worker(workerId)).ConfigureAwait(false);
        return json.IsNull ? null : WorkerRecord.FromJson(json!);
    }

    /// <summary>The records of every live worker of the cluster; forgets the ids of dead ones.</summary>
    public async Task<IReadOnlyList<WorkerRecord>> ListWorkersAsync()
    {
        var ids = (await _db.SetMembersAsync(Keys.Workers).ConfigureAwait(false)).Select(v => (string)v!).ToArray();
        if (ids.Length == 0)
        {
            return [];
        }

        var records = await _db.StringGetAsync(ids.Select(id => (RedisKey)(Keys.WorkerPrefix + id)).ToArray()).ConfigureAwait(false);
        var live = new List<WorkerRecord>();
        var dead = new List<RedisValue>();
        for (var i = 0; i < ids.Length; i++)
        {
            if (records[i].IsNull)
            {
                dead.Add(ids[i]);
            }
            else
            {
                live.Add(WorkerRecord.FromJson(records[i]!));
            }
        }

        if (dead.Count > 0)
        {
            // Death is read from the records, not from this set, so forgetting an id here hides nothing from anyone.
            await _db.SetRemoveAsync(Keys.Workers, dead.ToArray()).ConfigureAwait(false);
        }

        return live;
    }

    /// <summary>Which of <paramref name="workerIds"/> have a live record.</summary>
    public async Task<HashSet<ObjectId>> AliveAsync(IReadOnlyList<ObjectId> workerIds)
    {
        if (workerIds.Count == 0)
        {
            return [];
        }

        var records = await _db.StringGetAsync(workerIds.Select(id => (RedisKey)Keys.Worker(id)).ToArray()).ConfigureAwait(false);
        return workerIds.Where((_, i) => !records[i].IsNull).ToHashSet();
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync().ConfigureAwait(false);
}
