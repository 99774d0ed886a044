using Microsoft.Extensions.Logging;

namespace RaySharing.Worker.Diagnostics;

/// <summary>
/// Every log event of the worker. Event ids by area, never renumbered: 1xxx sessions, 2xxx holders,
/// 3xxx objects, 4xxx hosting and calls.
/// </summary>
internal static partial class WorkerLog
{
    [LoggerMessage(1001, LogLevel.Information, "Session {SessionId} opened in namespace '{Namespace}' by '{ClientName}' with a {LeaseMillis} ms lease")]
    public static partial void SessionOpened(ILogger logger, ObjectId sessionId, string @namespace, string clientName, double leaseMillis);

    [LoggerMessage(1002, LogLevel.Information, "Session {SessionId} ended: {Why}")]
    public static partial void SessionEnded(ILogger logger, ObjectId sessionId, string why);

    [LoggerMessage(1003, LogLevel.Warning, "{Count} session(s) ended because their lease lapsed")]
    public static partial void LeasesLapsed(ILogger logger, int count);

    [LoggerMessage(2001, LogLevel.Information, "Holder '{Namespace}/{Name}' created, incarnation {Incarnation}, lifetime {Lifetime}, by session {SessionId}")]
    public static partial void HolderCreated(ILogger logger, string @namespace, string name, ObjectId incarnation, string lifetime, ObjectId sessionId);

    [LoggerMessage(2002, LogLevel.Information, "Holder '{Namespace}/{Name}' incarnation {Incarnation} died ({Why}); {Freed} object(s) freed")]
    public static partial void HolderKilled(ILogger logger, string @namespace, string name, ObjectId incarnation, long freed, string why);

    [LoggerMessage(2003, LogLevel.Debug, "Holder '{Namespace}/{Name}' registered {Added} ref(s) under '{Key}' ({Total} in all)")]
    public static partial void Registered(ILogger logger, string @namespace, string name, string key, int added, int total);

    [LoggerMessage(2004, LogLevel.Debug, "Holder '{Namespace}/{Name}' unregistered '{Key}' ({Removed} ref(s))")]
    public static partial void Unregistered(ILogger logger, string @namespace, string name, string key, int removed);

    [LoggerMessage(3001, LogLevel.Debug, "Object {ObjectId} put: {Size} bytes owned by {Owner}")]
    public static partial void ObjectPut(ILogger logger, ObjectId objectId, long size, ObjectOwner owner);

    [LoggerMessage(3002, LogLevel.Debug, "Object {ObjectId} freed ({Size} bytes): {Reason}")]
    public static partial void ObjectFreed(ILogger logger, ObjectId objectId, long size, string reason);

    [LoggerMessage(3003, LogLevel.Error, "Reclaiming the objects of dead owner {Owner} failed")]
    public static partial void ReclaimFailed(ILogger logger, ObjectOwner owner, Exception exception);

    [LoggerMessage(3004, LogLevel.Information, "Objects fell from {PeakObjects} to {Objects}: memory returned to the system (managed heap {BeforeMiB} MiB -> {AfterMiB} MiB)")]
    public static partial void MemoryReturned(ILogger logger, long peakObjects, long objects, long beforeMiB, long afterMiB);

    [LoggerMessage(3005, LogLevel.Warning, "The object store's {Bytes}-byte arena is private memory, so same-host clients will not share it: {Why}")]
    public static partial void ArenaNotShared(ILogger logger, long bytes, string why);

    [LoggerMessage(3007, LogLevel.Information, "Object store: {CapacityBytes} bytes of capacity in a {ArenaBytes}-byte arena, {Sharing}")]
    public static partial void ArenaCreated(ILogger logger, long capacityBytes, long arenaBytes, string sharing);

    [LoggerMessage(3010, LogLevel.Information, "Spilling to {Directory}: up to {SpillCapacityBytes} bytes, once objects in memory pass {HighWaterBytes} bytes")]
    public static partial void SpillReady(ILogger logger, string directory, long spillCapacityBytes, long highWaterBytes);

    [LoggerMessage(3011, LogLevel.Debug, "Object {ObjectId} spilled to disk ({Size} bytes)")]
    public static partial void ObjectSpilled(ILogger logger, ObjectId objectId, long size);

    [LoggerMessage(3012, LogLevel.Debug, "Object {ObjectId} restored from disk ({Size} bytes)")]
    public static partial void ObjectRestored(ILogger logger, ObjectId objectId, long size);

    [LoggerMessage(3013, LogLevel.Warning, "Spilling object {ObjectId} ({Size} bytes) failed; it stays in memory")]
    public static partial void SpillFailed(ILogger logger, ObjectId objectId, long size, Exception exception);

    [LoggerMessage(3014, LogLevel.Error, "Object {ObjectId} cannot be restored from disk: {Problem}")]
    public static partial void SpillFileLost(ILogger logger, ObjectId objectId, string problem);

    [LoggerMessage(3015, LogLevel.Information, "Removed the spill directory {Directory} of a worker that is gone ({Files} spill file(s))")]
    public static partial void StaleSpillDirectoryRemoved(ILogger logger, string directory, int files);

    [LoggerMessage(3016, LogLevel.Warning, "The spill file {Path} could not be deleted: {Why}")]
    public static partial void SpillFileNotDeleted(ILogger logger, string path, string why);

    [LoggerMessage(3017, LogLevel.Error, "The background spiller failed; puts past the high-water mark will spill on their own threads until it runs again")]
    public static partial void SpillerFailed(ILogger logger, Exception exception);

    [LoggerMessage(3006, LogLevel.Debug, "Session {SessionId} attached the shared-memory arena")]
    public static partial void SharedMemoryAttached(ILogger logger, ObjectId sessionId);

    [LoggerMessage(4001, LogLevel.Information, "RaySharing worker {WorkerId} listening on {Address}")]
    public static partial void Listening(ILogger logger, ObjectId workerId, string address);

    // 4002 (a failed call) is retired: failures go to the caller as typed statuses.

    [LoggerMessage(4003, LogLevel.Error, "Lease monitor failed")]
    public static partial void LeaseMonitorFailed(ILogger logger, Exception exception);

    [LoggerMessage(5001, LogLevel.Information, "Worker {WorkerId} joined cluster '{Cluster}' (directory epoch {Epoch})")]
    public static partial void JoinedCluster(ILogger logger, ObjectId workerId, string cluster, string epoch);

    [LoggerMessage(5002, LogLevel.Warning, "The cluster directory did not answer ({Reason}); this worker's registration lapses in {RemainingMillis} ms unless it does")]
    public static partial void DirectoryUnreachable(ILogger logger, string reason, long remainingMillis);

    [LoggerMessage(5003, LogLevel.Information, "The cluster directory answers again")]
    public static partial void DirectoryBack(ILogger logger);

    [LoggerMessage(5004, LogLevel.Warning, "The cluster directory lost its data (epoch {Old} is now {New}); publishing this worker's {Count} holder(s) again")]
    public static partial void DirectoryReset(ILogger logger, string old, string @new, int count);

    [LoggerMessage(5005, LogLevel.Warning, "Holder {Namespace}/{Name} incarnation {Incarnation} is killed: while the directory was empty another worker took its name ({Winner})")]
    public static partial void HolderNameTaken(ILogger logger, string @namespace, string name, ObjectId incarnation, string winner);

    [LoggerMessage(5006, LogLevel.Critical, "Worker {WorkerId} could not renew its cluster registration for {Lease}: it is dead to the cluster and stops; its {Holders} holder(s) die")]
    public static partial void LeftCluster(ILogger logger, ObjectId workerId, TimeSpan lease, int holders);

    [LoggerMessage(5008, LogLevel.Warning, "The session of this worker on worker {WorkerId} at {Address} ended there (its lease lapsed, or another worker now answers at that address); refs borrowed through it are gone, and the next forwarded call opens a new one")]
    public static partial void PeerSessionLost(ILogger logger, ObjectId workerId, string address);

    [LoggerMessage(5009, LogLevel.Warning, "Giving back {Count} ref(s) borrowed on worker {WorkerId} failed ({Reason}); that worker drops them when this worker's session there ends")]
    public static partial void RemoteReleaseFailed(ILogger logger, int count, ObjectId workerId, string reason);

    [LoggerMessage(5007, LogLevel.Warning, "The directory entry of dead holder {Namespace}/{Name} could not be removed yet; it is tried again after the next renewal")]
    public static partial void HolderEntryNotRemoved(ILogger logger, string @namespace, string name, Exception exception);

    [LoggerMessage(5010, LogLevel.Information, "Objects put here for holder {Namespace}/{Name} incarnation {Incarnation} of worker {HolderWorker} are stored here; that worker was told")]
    public static partial void ProxyCreated(ILogger logger, string @namespace, string name, ObjectId incarnation, ObjectId holderWorker);

    [LoggerMessage(5011, LogLevel.Warning, "Holder {Namespace}/{Name} lost {Count} registered or borrowed object(s) that worker {WorkerId} stored: {Why}; gets of them answer OBJECT_LOST")]
    public static partial void ObjectsLost(ILogger logger, string @namespace, string name, long count, ObjectId workerId, string why);

    [LoggerMessage(5012, LogLevel.Warning, "Worker {WorkerId} was not told that holder {Namespace}/{Name} died; it notices through the directory within a lease")]
    public static partial void HolderDeathNotSent(ILogger logger, ObjectId workerId, string @namespace, string name, Exception exception);

    [LoggerMessage(5013, LogLevel.Information, "The objects stored here for holder {Namespace}/{Name} incarnation {Incarnation} are freed: {Why}")]
    public static partial void ProxyDied(ILogger logger, string @namespace, string name, ObjectId incarnation, string why);
}
