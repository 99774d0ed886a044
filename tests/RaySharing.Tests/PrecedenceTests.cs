using Grpc.Core;
using Grpc.Net.Client;
using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// One test per row of ERRORS.md's "Precedence of checks": an envelope that is wrong in several ways
/// gets the answer of the first row that applies, on get, borrow and register alike.
/// </summary>
public sealed class PrecedenceTests
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);

    public static TheoryData<string, string> OwnerAlterations => new()
    {
        { "namespace", "Get" }, { "name", "Get" }, { "incarnation", "Get" }, { "kind", "Get" },
        { "namespace", "Borrow" }, { "name", "Borrow" }, { "incarnation", "Borrow" }, { "kind", "Borrow" },
        { "namespace", "Register" }, { "name", "Register" }, { "incarnation", "Register" }, { "kind", "Register" },
    };

    [Theory]
    [MemberData(nameof(OwnerAlterations))]
    public async Task Resolve_OwnerAlteredObjectAlive_InvalidEnvelopeWithObjectId(string field, string method)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var live = await client.PutAsync(7, holder).Within();
        var altered = EnvelopeCodec.Encode(live.Envelope with { Owner = Alter(live.Owner, field) });

        var (status, reason, objectId) = await CallAsync(worker.Address, client.SessionToken, method, altered, holder);

        Assert.Equal((StatusCode.InvalidArgument, "INVALID_ENVELOPE", live.Id.ToString()), (status, reason, objectId));
        Assert.Equal(7, await client.GetAsync(live.As<int>()).Within());
    }

    [Fact]
    public async Task Resolve_OwnerAlteredToALiveHolder_InvalidEnvelopeNotTheOtherHoldersObject()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var a = await client.GetOrCreateHolderAsync("A").Within();
        var b = await client.GetOrCreateHolderAsync("B").Within();
        var live = await client.PutAsync(1, a).Within();
        var altered = EnvelopeCodec.Encode(live.Envelope with { Owner = new ObjectOwner(OwnerKind.Holder, b.Namespace, b.Name, b.Incarnation.Value) });

        var (status, reason, objectId) = await CallAsync(worker.Address, client.SessionToken, "Register", altered, b);

        Assert.Equal((StatusCode.InvalidArgument, "INVALID_ENVELOPE", live.Id.ToString()), (status, reason, objectId));
        Assert.Empty(await b.ListKeysAsync().Within());
    }

    [Fact]
    public async Task Resolve_OwnerDiedAndEnvelopeAltered_InvalidEnvelopeFirst()
    {
        // Rows 5 before 6: the worker remembers the freed object's owner, so the altered owner is caught
        // even after the real owner died.
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var freed = await client.PutAsync(1, holder).Within();
        var genuine = freed.ToEnvelopeBytes();
        var altered = EnvelopeCodec.Encode(freed.Envelope with { Owner = Alter(freed.Owner, "name") });
        await freed.DisposeAsync().Within();
        await holder.KillAsync().Within();

        Assert.Equal((StatusCode.InvalidArgument, "INVALID_ENVELOPE", freed.Id.ToString()), await CallAsync(worker.Address, client.SessionToken, "Get", altered, null));
        var died = await Assert.ThrowsAsync<OwnerDiedException>(() => client.BorrowFromEnvelopeAsync(genuine).Within());
        Assert.Equal((freed.Id, holder.Incarnation, "H"), (died.ObjectId, died.Incarnation, died.HolderName));
    }

    [Fact]
    public async Task Resolve_FreedObjectOwnerAltered_InvalidEnvelopeWithObjectId()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var freed = await client.PutAsync(1, holder).Within();
        var altered = EnvelopeCodec.Encode(freed.Envelope with { Owner = Alter(freed.Owner, "incarnation") });
        var genuine = freed.ToEnvelopeBytes();
        await freed.DisposeAsync().Within();

        Assert.Equal((StatusCode.InvalidArgument, "INVALID_ENVELOPE", freed.Id.ToString()), await CallAsync(worker.Address, client.SessionToken, "Borrow", altered, null));
        var ex = await Assert.ThrowsAsync<ObjectFreedException>(() => client.BorrowFromEnvelopeAsync(genuine).Within());
        Assert.Equal(freed.Id, ex.ObjectId);
    }

    [Fact]
    public async Task Resolve_FreedObjectWhoseOwnerDiedSince_OwnerDied()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var freed = await client.PutAsync(1, holder).Within();
        var genuine = freed.ToEnvelopeBytes();
        await freed.DisposeAsync().Within();
        await Assert.ThrowsAsync<ObjectFreedException>(() => client.BorrowFromEnvelopeAsync(genuine).Within());

        await holder.KillAsync().Within();

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.BorrowFromEnvelopeAsync(genuine).Within());
        Assert.Equal((freed.Id, holder.Incarnation), (ex.ObjectId, ex.Incarnation));
        Assert.Contains("killed by session", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resolve_UnknownIdLiveOwner_ObjectNotFound()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var live = await client.PutAsync(1, holder).Within();
        var unknown = ObjectId.NewId();

        var (status, reason, objectId) = await CallAsync(worker.Address, client.SessionToken, "Get",
            EnvelopeCodec.Encode(live.Envelope with { ObjectId = unknown }), null);

        Assert.Equal((StatusCode.NotFound, "OBJECT_NOT_FOUND", unknown.ToString()), (status, reason, objectId));
    }

    [Fact]
    public async Task Resolve_UnknownIdOwnerThatNeverExisted_ObjectNotFoundNotOwnerDied()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var live = await client.PutAsync(1, holder).Within();
        var unknown = ObjectId.NewId();
        var forged = live.Envelope with { ObjectId = unknown, Owner = new ObjectOwner(OwnerKind.Holder, "nowhere", "ghost", ObjectId.NewId()) };

        var ex = await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.BorrowFromEnvelopeAsync(EnvelopeCodec.Encode(forged)).Within());

        Assert.Equal(unknown, ex.ObjectId);
        Assert.Equal(1, await client.GetAsync(live.As<int>()).Within());
    }

    [Fact]
    public async Task Resolve_UnknownIdOwnerRememberedDead_OwnerDiedWithWhy()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var live = await client.PutAsync(1, holder).Within();
        await holder.KillAsync().Within();
        var unknown = ObjectId.NewId();

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.BorrowFromEnvelopeAsync(EnvelopeCodec.Encode(live.Envelope with { ObjectId = unknown })).Within());

        Assert.Equal((unknown, holder.Incarnation, "H"), (ex.ObjectId, ex.Incarnation, ex.HolderName));
        Assert.Contains("killed by session", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_GenuineRefOfAnotherHolder_NotOwnerAfterResolution()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var a = await client.GetOrCreateHolderAsync("A").Within();
        var b = await client.GetOrCreateHolderAsync("B").Within();
        var ofA = await client.PutAsync(1, a).Within();

        var ex = await Assert.ThrowsAsync<RefNotOwnedException>(() => b.RegisterAsync("k", [ofA]).Within());

        Assert.Equal(ofA.Id, ex.ObjectId);
        Assert.Equal(1, await a.RegisterAsync("k", [ofA]).Within());
    }

    [Fact]
    public async Task Register_FirstFailingRefDecides_NothingRegistered()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync(1, holder).Within();
        var freed = await client.PutAsync(2, holder).Within();
        var freedBytes = freed.ToEnvelopeBytes();
        await freed.DisposeAsync().Within();
        var altered = EnvelopeCodec.Encode(good.Envelope with { Size = 999 });

        var (status, reason, objectId) = await CallAsync(worker.Address, client.SessionToken, "Register", [good.ToEnvelopeBytes(), freedBytes, altered], holder);

        Assert.Equal((StatusCode.NotFound, "OBJECT_FREED", freed.Id.ToString()), (status, reason, objectId));
        Assert.Empty(await holder.ListKeysAsync().Within());
    }

    private static ObjectOwner Alter(ObjectOwner owner, string field) => field switch
    {
        "namespace" => owner with { Namespace = owner.Namespace + "x" },
        "name" => owner with { Name = "never-existed" },
        "incarnation" => owner with { Incarnation = ObjectId.NewId() },
        _ => new ObjectOwner(OwnerKind.Session, owner.Namespace, string.Empty, owner.Incarnation),
    };

    private static Task<(StatusCode Status, string? Reason, string? ObjectId)> CallAsync(string address, ObjectId session, string method, byte[] envelope, ObjectHolder? holder) =>
        CallAsync(address, session, method, [envelope], holder);

    /// <summary>A raw call, so that the trailers (rs-object-id above all) can be read as sent.</summary>
    private static async Task<(StatusCode Status, string? Reason, string? ObjectId)> CallAsync(string address, ObjectId session, string method, byte[][] envelopes, ObjectHolder? holder)
    {
        var (service, body) = method switch
        {
            "Get" => ("raysharing.v1.Objects", RawWire.Field(1, envelopes[0])),
            "Borrow" => ("raysharing.v1.Objects", envelopes.SelectMany(e => RawWire.Field(1, e)).ToArray()),
            _ => ("raysharing.v1.Holders", [
                .. RawWire.Field(1, [.. RawWire.Field(1, System.Text.Encoding.UTF8.GetBytes(holder!.Namespace)), .. RawWire.Field(2, System.Text.Encoding.UTF8.GetBytes(holder.Name))]),
                .. RawWire.Field(2, "k"u8.ToArray()),
                .. envelopes.SelectMany(e => RawWire.Field(3, e)),
            ]),
        };
        using var channel = GrpcChannel.ForAddress(address);
        var headers = new Metadata { { WireHeaders.SessionToken, session.ToString() } };
        try
        {
            await channel.CreateCallInvoker().AsyncUnaryCall(new Method<byte[], byte[]>(MethodType.Unary, service, method, Bytes, Bytes), null,
                new CallOptions(headers, DateTime.UtcNow.AddSeconds(10)), body).ResponseAsync.Within();
            return (StatusCode.OK, null, null);
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Trailers.GetValue(WireHeaders.Reason), ex.Trailers.GetValue(WireHeaders.ObjectId));
        }
    }
}
