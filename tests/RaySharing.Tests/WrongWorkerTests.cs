using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>A ref handed to a client of another worker is neither dead nor unknown: it lives elsewhere, and the error says where.</summary>
public sealed class WrongWorkerTests
{
    [Fact]
    public async Task FromEnvelope_RefOfAnotherLiveWorker_ThrowsWrongWorkerNamingIt()
    {
        await using var a = await TestWorker.StartAsync();
        await using var b = await TestWorker.StartAsync();
        var clientA = await a.ConnectAsync();
        var clientB = await b.ConnectAsync();
        var holder = await clientA.GetOrCreateHolderAsync("H").Within();
        var objectRef = await clientA.PutAsync("on A", holder).Within();

        var ex = await Assert.ThrowsAsync<WrongWorkerException>(() => clientB.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes()).Within());

        Assert.Equal("WRONG_WORKER", ex.Reason);
        Assert.Equal(a.Worker.WorkerId, ex.WorkerId);
        Assert.Equal(a.Address, ex.Address);
        Assert.Equal(objectRef.Id, ex.ObjectId);
        Assert.Contains(a.Address, ex.Message);
        Assert.False(ex.IsTransient);
        // What the message says to do works: a client of A reads it, and B's client still serves.
        var clientOfA = await a.ConnectAsync();
        Assert.Equal("on A", await clientOfA.GetAsync((await clientOfA.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes()).Within()).As<string>()).Within());
        Assert.Equal("on B", await clientB.GetAsync(await clientB.PutAsync("on B").Within()).Within());
    }

    [Fact]
    public async Task Get_RefOfAnotherLiveWorker_ThrowsWrongWorker()
    {
        await using var a = await TestWorker.StartAsync();
        await using var b = await TestWorker.StartAsync();
        var clientA = await a.ConnectAsync();
        var clientB = await b.ConnectAsync();
        var objectRef = await clientA.PutAsync(new byte[] { 1, 2, 3 }).Within();

        var ex = await Assert.ThrowsAsync<WrongWorkerException>(() => clientB.GetAsync(objectRef).Within());

        Assert.Equal(a.Worker.WorkerId, ex.WorkerId);
        Assert.Equal(a.Address, ex.Address);
    }

    [Fact]
    public async Task FromEnvelope_EarlierRunOfThisWorker_ThrowsOwnerDied()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var objectRef = await client.PutAsync("now", holder).Within();
        // The same address with another worker id: what a worker restarted on its address sees.
        var earlier = EnvelopeCodec.Encode(objectRef.Envelope with { Location = new WorkerLocation(worker.Address, ObjectId.NewId()) });

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.BorrowFromEnvelopeAsync(earlier).Within());

        Assert.Equal(objectRef.Id, ex.ObjectId);
        Assert.Equal("H", ex.HolderName);
    }
}
