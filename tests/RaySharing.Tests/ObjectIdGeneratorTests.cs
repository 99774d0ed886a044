using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker.Ownership;
using Xunit;

namespace RaySharing.Tests;

/// <summary>Object ids are unguessable: a neighbour of a real id names nothing.</summary>
public sealed class ObjectIdGeneratorTests
{
    [Fact]
    public async Task Resolve_EachBitOfALiveIdFlipped_ObjectNotFoundNeverAnotherObject()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        // Neighbours on both sides, as a counter would have made them.
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 200; i++)
        {
            refs.Add(await client.PutEncodedAsync(BitConverter.GetBytes(i), owner: holder).Within());
        }

        var target = refs[100];
        var bytes = target.Id.ToByteArray();
        for (var bit = 0; bit < ObjectId.Length * 8; bit++)
        {
            var flipped = (byte[])bytes.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            var id = ObjectId.FromBytes(flipped);
            var forged = EnvelopeCodec.Encode(target.Envelope with { ObjectId = id });

            var ex = await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.BorrowFromEnvelopeAsync(forged).Within());

            Assert.Equal(id, ex.ObjectId);
        }

        Assert.Equal(BitConverter.GetBytes(100), await client.GetBytesAsync(target).Within());
        Assert.Equal(200, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public void Next_ManyIdsAcrossThreads_DistinctAndNotSequential()
    {
        var generator = new ObjectIdGenerator();
        var ids = new ObjectId[4][];
        Parallel.For(0, ids.Length, t => ids[t] = [.. Enumerable.Range(0, 10_000).Select(_ => generator.Next())]);

        var all = ids.SelectMany(x => x).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.DoesNotContain(ObjectId.Empty, all);
        // A counter shares its first half across ids; random ids share no prefix.
        Assert.True(all.Select(id => id.ToByteArray()[0..8]).Select(Convert.ToHexString).Distinct().Count() > all.Count - 2);
    }
}
