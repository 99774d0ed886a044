using System.Collections.Concurrent;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class StoreFullTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Put_StoreFullWithConcurrentPutters_EveryRefusalIsStoreFullAndGetsKeepWorking(bool sharedMemory)
    {
        const int Putters = 8;
        const int PutsEach = 25;
        const int ObjectBytes = 3 << 20;
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = 10L << 20);
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var small = await client.PutAsync("existing").Within();
        var largeBytes = Payload(ObjectBytes, seed: 1);
        var large = await client.PutAsync(largeBytes).Within();

        var failures = new ConcurrentQueue<Exception>();
        var stored = 0;
        var refused = 0;
        using var done = new CancellationTokenSource();
        var getter = Task.Run(async () =>
        {
            var gets = 0;
            while (!done.IsCancellationRequested || gets == 0)
            {
                // Every get of an object that exists must succeed while the store refuses puts.
                Assert.Equal("existing", await client.GetAsync(small).Within());
                Assert.Equal(ObjectBytes, (await client.GetAsync(large).Within()).Length);
                gets++;
            }

            return gets;
        });
        var putters = Enumerable.Range(0, Putters).Select(p => Task.Run(async () =>
        {
            var bytes = Payload(ObjectBytes, seed: 100 + p);
            for (var i = 0; i < PutsEach; i++)
            {
                try
                {
                    var objectRef = await client.PutAsync(bytes).Within();
                    Interlocked.Increment(ref stored);
                    await objectRef.DisposeAsync().Within();
                }
                catch (ObjectStoreFullException)
                {
                    Interlocked.Increment(ref refused);
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex);
                }
            }
        })).ToArray();

        await Task.WhenAll(putters).Within(TimeSpan.FromSeconds(90));
        await done.CancelAsync();
        var gets = await getter.Within();

        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine + "---" + Environment.NewLine, failures.Take(3)));
        Assert.Equal(Putters * PutsEach, stored + refused);
        Assert.True(refused > 0, "the store never refused a put: the test did not fill it");
        Assert.True(gets > 0);
        // The connection is healthy: the same client still puts, gets and reads stats.
        var after = await client.PutAsync(Payload(ObjectBytes, seed: 7)).Within();
        Assert.Equal(ObjectBytes, (await client.GetAsync(after).Within()).Length);
        Assert.Equal(3, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task PutStream_StoreFull_RefusedBeforeTheBytesAreSent()
    {
        await using var worker = await TestWorker.StartAsync(o => o.StoreCapacityBytes = 4L << 20);
        var client = await worker.ConnectAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        var proxied = await TestWorker.ConnectAsync(proxy.Address, o => { o.UseSharedMemory = false; o.UseChannel = false; });
        try
        {
            await client.PutAsync(Payload(3 << 20, seed: 1)).Within();
            // The worker answers the header alone: far fewer bytes than the object may reach it before the
            // refusal, so with this budget a client that streams before it hears back stalls instead.
            proxy.FreezeToWorkerAfter(256 << 10);

            var ex = await Assert.ThrowsAsync<ObjectStoreFullException>(() => proxied.PutAsync(Payload(2 << 20, seed: 2)).Within());

            Assert.Contains("2097152", ex.Message, StringComparison.Ordinal);
            Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);
        }
        finally
        {
            await proxied.DisposeAsync().Within();
        }
    }

    private static byte[] Payload(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
