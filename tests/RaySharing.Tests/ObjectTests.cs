using System.IO.Hashing;
using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class ObjectTests
{
    public sealed class Partition
    {
        public int Index { get; set; }

        public List<string> Rows { get; set; } = [];
    }

    [Fact]
    public async Task PutAndGet_TypedValues_RoundTrip()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();

        Assert.Equal("hello", await client.GetAsync(await client.PutAsync("hello", holder).Within()).Within());
        Assert.Equal(new[] { 1L, 2L, long.MaxValue }, await client.GetAsync(await client.PutAsync(new[] { 1L, 2L, long.MaxValue }, holder).Within()).Within());
        var dict = new Dictionary<string, double> { ["a"] = 1.5, ["b"] = -2 };
        Assert.Equal(dict, await client.GetAsync(await client.PutAsync(dict).Within()).Within());
        var partition = await client.GetAsync(await client.PutAsync(new Partition { Index = 3, Rows = ["x", "y"] }, holder).Within()).Within();
        Assert.Equal(3, partition.Index);
        Assert.Equal(["x", "y"], partition.Rows);
        var raw = new byte[] { 0, 1, 2, 255 };
        var rawRef = await client.PutAsync(raw, holder).Within();
        Assert.Equal(ObjectCodec.Raw, rawRef.Codec);
        Assert.Equal(raw, await client.GetAsync(rawRef).Within());
    }

    [Fact]
    public async Task PutAndGet_LargeObject_StreamsInChunksWithChecksum()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.ChunkBytes = 64 << 10);
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var data = new byte[12_345_678];
        new Random(1).NextBytes(data);

        var objectRef = await client.PutAsync(data, holder).Within();
        var back = await client.GetAsync(objectRef).Within();

        Assert.Equal(data.Length, objectRef.Size);
        Assert.Equal(Crc32.HashToUInt32(data), objectRef.Envelope.Checksum);
        Assert.True(data.AsSpan().SequenceEqual(back));
        Assert.Equal(data.Length, (await client.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task Put_CheckInput_EnvelopeChecksumIsZlibCrc32()
    {
        // The standard check value of CRC-32/ISO-HDLC, what Python's zlib.crc32(b"123456789") gives:
        // peers in other languages verify gets with their own CRC-32.
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();

        var objectRef = await client.PutAsync("123456789"u8.ToArray()).Within();

        Assert.Equal(0xCBF43926u, objectRef.Envelope.Checksum);
    }

    [Fact]
    public async Task Put_EmptyValue_RoundTrips()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();

        Assert.Empty(await client.GetAsync(await client.PutAsync(Array.Empty<byte>()).Within()).Within());
        Assert.Empty(await client.GetAsync(await client.PutAsync(Array.Empty<int>()).Within()).Within());
    }

    [Fact]
    public async Task PutWithoutOwner_SessionEnds_ObjectDiesWithOwnerDied()
    {
        await using var worker = await TestWorker.StartAsync();
        var putter = await worker.ConnectAsync();
        var other = await worker.ConnectAsync();
        var objectRef = await putter.PutAsync("mine", owner: null).Within();
        Assert.Equal(OwnerKind.Session, objectRef.Owner.Kind);
        var borrowed = await other.BorrowFromEnvelopeAsync<string>(objectRef.ToEnvelopeBytes()).Within();
        Assert.Equal("mine", await other.GetAsync(borrowed).Within());

        await putter.DisposeAsync().Within();

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => other.GetAsync(borrowed).Within());
        Assert.Equal(putter.SessionId, ex.OwnerSessionId);
        Assert.Null(ex.HolderName);
        Assert.Equal(0, (await other.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task PutWithoutOwner_RefDisposed_ObjectFreed()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var objectRef = await client.PutAsync(new byte[1000]).Within();
        var envelope = objectRef.ToEnvelopeBytes();

        await objectRef.DisposeAsync().Within();

        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).UsedBytes);
        await Assert.ThrowsAsync<ObjectFreedException>(() => client.BorrowFromEnvelopeAsync(envelope).Within());
    }

    [Fact]
    public async Task PutterDisposed_HolderOwnedRegisteredObject_OtherSessionGetsIt()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var driver = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var objectRef = await executor.PutAsync(new[] { "a", "b" }, holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();

        await executor.DisposeAsync().Within();

        var fetched = await (await driver.GetHolderAsync("H").Within()).FetchAsync<string[]>("job").Within();
        Assert.Equal(new[] { "a", "b" }, await driver.GetAsync(fetched.Single()).Within());
    }

    [Fact]
    public async Task PutterDisposed_HolderOwnedUnregisteredButBorrowed_LivesWhileBorrowed()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var driver = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var objectRef = await executor.PutAsync(5, holder).Within();
        var borrowed = await driver.BorrowFromEnvelopeAsync<int>(objectRef.ToEnvelopeBytes()).Within();

        await executor.DisposeAsync().Within();

        Assert.Equal(5, await driver.GetAsync(borrowed).Within());
        await borrowed.DisposeAsync().Within();
        Assert.Equal(0, (await driver.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task Get_WrongType_ThrowsTypeMismatchBeforeTransfer()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var ints = await client.PutAsync(new[] { 1, 2 }).Within();
        var raw = await client.PutAsync(new byte[] { 1, 2 }).Within();

        var wrongType = await Assert.ThrowsAsync<TypeMismatchException>(() => client.GetAsync<string>(ints).Within());
        Assert.Equal(ints.Id, wrongType.ObjectId);
        Assert.Equal("System.Int32[]", wrongType.StoredType);
        Assert.Equal("System.String", wrongType.RequestedType);
        await Assert.ThrowsAsync<TypeMismatchException>(() => client.GetAsync<byte[]>(ints).Within());
        var wrongCodec = await Assert.ThrowsAsync<TypeMismatchException>(() => client.GetAsync<int[]>(raw).Within());
        Assert.Equal(ObjectCodec.Raw, wrongCodec.StoredCodec);

        var dynamicView = await client.GetAsync<object>(ints).Within();
        Assert.Equal(2, ((object[])dynamicView).Length);
        Assert.Equal(new[] { 1, 2 }, await client.GetAsync(ints).Within());
    }

    [Fact]
    public async Task Get_UntypedBytesThatDoNotDecode_ThrowsTypeMismatch()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        // An untyped XLANG string, as another language would put it.
        var objectRef = await client.PutEncodedAsync(new byte[] { 0xa3, (byte)'a', (byte)'b', (byte)'c' }, ObjectCodec.Xlang).Within();

        Assert.Equal("abc", await client.GetAsync<string>(objectRef).Within());
        var ex = await Assert.ThrowsAsync<TypeMismatchException>(() => client.GetAsync<int[]>(objectRef).Within());
        Assert.Equal(string.Empty, ex.StoredType);
    }

    [Fact]
    public async Task Get_UnknownObjectId_ThrowsObjectNotFound()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var real = await client.PutAsync(1, holder).Within();
        var forged = EnvelopeCodec.Encode(real.Envelope with { ObjectId = ObjectId.NewId() });

        var ex = await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.BorrowFromEnvelopeAsync(forged).Within());

        Assert.NotEqual(real.Id, ex.ObjectId);
        Assert.Equal(1, await client.GetAsync(real).Within());
    }

    [Fact]
    public async Task FromEnvelope_TamperedEnvelope_ThrowsInvalidEnvelope()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var real = await client.PutAsync(1, holder).Within();
        var tampered = EnvelopeCodec.Encode(real.Envelope with { Size = 999 });

        await Assert.ThrowsAsync<InvalidEnvelopeException>(() => client.BorrowFromEnvelopeAsync(tampered).Within());
    }

    [Theory]
    [InlineData("empty")]
    [InlineData("garbage")]
    [InlineData("truncated")]
    [InlineData("not-an-array")]
    public async Task FromEnvelope_BadBytes_ThrowsInvalidEnvelopeAndWorkerKeepsServing(string kind)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var other = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync("ok", holder).Within();
        var bytes = good.ToEnvelopeBytes();
        byte[] bad = kind switch
        {
            "empty" => [],
            "garbage" => [.. Enumerable.Range(0, 64).Select(i => (byte)(i * 37))],
            "truncated" => bytes[..(bytes.Length / 2)],
            _ => [0xa3, 0x61, 0x62, 0x63],
        };

        await Assert.ThrowsAsync<InvalidEnvelopeException>(() => client.BorrowFromEnvelopeAsync(bad).Within());

        Assert.Equal("ok", await other.GetAsync(await other.BorrowFromEnvelopeAsync<string>(bytes).Within()).Within());
        Assert.Equal("ok", await client.GetAsync(good).Within());
    }

    [Fact]
    public async Task FromEnvelope_EnvelopeNotMatchingStoredObject_ThrowsInvalidEnvelope()
    {
        // Well-formed, so the client sends it; the worker compares it with the envelope it issued.
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync(1, holder).Within();
        var forged = EnvelopeCodec.Encode(good.Envelope with { TypeName = "Forged" });

        var ex = await Assert.ThrowsAsync<InvalidEnvelopeException>(() => client.BorrowFromEnvelopeAsync(forged).Within());

        Assert.Equal("INVALID_ENVELOPE", ex.Reason);
        Assert.Equal(1, await holder.RegisterAsync("k", [good]).Within());
    }

    [Fact]
    public async Task Put_StoreFull_ThrowsObjectStoreFullAndKeepsEarlierObjects()
    {
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = 3 << 20);
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var first = await client.PutAsync(new byte[2 << 20], holder).Within();

        var small = await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutAsync(new byte[(1 << 20) + 1], holder).Within());
        var large = await Assert.ThrowsAsync<ObjectStoreFullException>(() => client.PutAsync(new byte[5 << 20], holder).Within());

        Assert.True(small.IsTransient);
        Assert.Contains("StoreCapacityBytes", large.Message, StringComparison.Ordinal);
        Assert.Equal(2 << 20, (await client.GetStoreStatsAsync().Within()).UsedBytes);
        Assert.Equal(2 << 20, (await client.GetAsync(first).Within()).Length);
        await first.DisposeAsync().Within();
        Assert.NotNull(await client.PutAsync(new byte[2 << 20], holder).Within());
    }

    [Fact]
    public async Task Put_HolderFromAnotherClient_ThrowsArgumentException()
    {
        await using var worker = await TestWorker.StartAsync();
        var a = await worker.ConnectAsync();
        var b = await worker.ConnectAsync();
        var holder = await a.GetOrCreateHolderAsync("H").Within();

        await Assert.ThrowsAsync<ArgumentException>(() => b.PutAsync(1, holder).Within());
    }

    [Fact]
    public async Task FreedObject_AfterItsTombstoneIsEvicted_StillATypedError()
    {
        await using var worker = await TestWorker.StartAsync(o => o.TombstoneCapacity = 2);
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var envelopes = new List<byte[]>();
        for (var i = 0; i < 3; i++)
        {
            var objectRef = await client.PutAsync(i, holder).Within();
            envelopes.Add(objectRef.ToEnvelopeBytes());
            await objectRef.DisposeAsync().Within();
        }

        // The first tombstone was evicted by the third: the worker no longer knows the first object.
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.BorrowFromEnvelopeAsync(envelopes[0]).Within());
        await Assert.ThrowsAsync<ObjectFreedException>(() => client.BorrowFromEnvelopeAsync(envelopes[2]).Within());
        await holder.KillAsync().Within();
        // Owner death is read from the envelope, not from a tombstone, so it never expires.
        await Assert.ThrowsAsync<OwnerDiedException>(() => client.BorrowFromEnvelopeAsync(envelopes[0]).Within());
    }

    [Fact]
    public async Task Release_ManyRefsInOneCall_FreesThemAll()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 50; i++)
        {
            refs.Add(await client.PutAsync(i).Within());
        }

        await client.ReleaseAsync(refs).Within();
        await client.ReleaseAsync(refs).Within();

        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).Objects);
        Assert.All(refs, r => Assert.True(r.IsReleased));
    }
}
