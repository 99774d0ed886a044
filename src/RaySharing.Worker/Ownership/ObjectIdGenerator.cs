using System.Security.Cryptography;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// Object ids: a random 64-bit prefix drawn once per worker start, then a counter. Unique across
/// workers and restarts, and about a microsecond cheaper per put than drawing 16 random bytes. Object
/// ids are names, not secrets; session ids and incarnations, which are, still come from
/// <see cref="ObjectId.NewId"/>.
/// </summary>
internal sealed class ObjectIdGenerator
{
    private readonly ulong _prefix = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
    private long _counter;

    public ObjectId Next() => ObjectId.FromHalves(_prefix, (ulong)Interlocked.Increment(ref _counter));
}
