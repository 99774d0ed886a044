using System.Security.Cryptography;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// Object ids: 128 bits from the operating system's CSPRNG, so an id cannot be guessed from another
/// and a flipped bit names no other object. Drawn in batches per thread: one RandomNumberGenerator call
/// per <see cref="BatchIds"/> puts keeps a put as cheap as the counter it replaces.
/// </summary>
internal sealed class ObjectIdGenerator
{
    private const int BatchIds = 256;

    [ThreadStatic]
    private static byte[]? t_batch;

    [ThreadStatic]
    private static int t_next;

    public ObjectId Next()
    {
        while (true)
        {
            var batch = t_batch ??= new byte[BatchIds * ObjectId.Length];
            if (t_next == 0)
            {
                RandomNumberGenerator.Fill(batch);
            }

            var id = ObjectId.FromBytes(batch.AsSpan(t_next * ObjectId.Length, ObjectId.Length));
            t_next = (t_next + 1) % BatchIds;
            // The all-zero id means "none" on the wire; drawing it is a 2^-128 event, but never hand it out.
            if (!id.IsEmpty)
            {
                return id;
            }
        }
    }
}
