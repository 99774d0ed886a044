using System.Text;
using RaySharing.Worker.Ownership;
using StackExchange.Redis;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// The names of a cluster's keys in the Redis directory. Every key of cluster <c>c</c> starts with <c>rs:{c}:</c>:
/// the braces make <c>c</c> the key's hash tag, so all keys of a cluster live in one slot and the directory's
/// scripts may touch several of them. The layout (README, "Run a cluster"):
/// <list type="bullet">
/// <item><c>rs:{c}:worker:&lt;worker id&gt;</c>: a live worker's record (JSON), expiring unless renewed within its lease.</item>
/// <item><c>rs:{c}:workers</c>: a set of the ids of workers that registered; an id whose record is gone is dead.</item>
/// <item><c>rs:{c}:holders</c>: a hash, field <c>namespace NUL name</c> (names hold no control characters), value
/// <c>&lt;worker id&gt;&lt;incarnation&gt;</c> in hex: where each holder lives. An entry whose worker is dead names a dead holder.</item>
/// <item><c>rs:{c}:epoch</c>: a random value set by the first registration on an empty directory; when it changes,
/// Redis lost its data (a restart without persistence) and workers publish their holders again.</item>
/// </list>
/// </summary>
internal sealed class ClusterKeys
{
    public const int MaxClusterNameLength = 64;

    public ClusterKeys(string clusterName)
    {
        Prefix = $"rs:{{{clusterName}}}:";
        WorkerPrefix = Prefix + "worker:";
        Workers = Prefix + "workers";
        Holders = Prefix + "holders";
        Epoch = Prefix + "epoch";
    }

    public string Prefix { get; }

    /// <summary>What a worker's record key starts with; the worker id in hex follows.</summary>
    public string WorkerPrefix { get; }

    public RedisKey Workers { get; }

    public RedisKey Holders { get; }

    public RedisKey Epoch { get; }

    public RedisKey Worker(ObjectId workerId) => WorkerPrefix + workerId.ToString();

    /// <summary>The holders hash's field of a holder: its namespace and name joined by NUL, which no name contains.</summary>
    public static RedisValue HolderField(HolderKey key) => Encoding.UTF8.GetBytes($"{key.Namespace}\0{key.Name}");

    /// <summary>Whether <paramref name="name"/> is 1 to 64 letters, digits, '-', '_' or '.' (nothing that could break a key or its hash tag).</summary>
    public static bool IsValidClusterName(string name) =>
        name.Length is > 0 and <= MaxClusterNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
