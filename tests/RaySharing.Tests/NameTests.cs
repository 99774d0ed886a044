using System.Text;
using Grpc.Core;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>The name rules (common.proto, "Names") hold at the worker, whoever calls, and names compare byte for byte.</summary>
public sealed class NameTests
{
    [Theory]
    [InlineData("a\0b")]
    [InlineData("line\r\n")]
    [InlineData("   ")]
    [InlineData("")]
    public async Task GetOrCreate_BadHolderName_InvalidRequestFromWorkerAndArgumentExceptionFromClient(string name)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Holders", "GetOrCreate", RawWire.Field(2, Encoding.UTF8.GetBytes(name)), client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_REQUEST", reason);
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => client.GetOrCreateHolderAsync(name).Within());
        Assert.Equal("name", ex.ParamName);
        Assert.Empty(await client.ListHoldersAsync().Within());
    }

    [Fact]
    public async Task GetOrCreate_ControlCharacterInNamespace_InvalidRequestFromWorkerAndArgumentExceptionFromClient()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var wire = new RawWire(worker.Address);
        var body = RawWire.Field(1, "ns\n"u8.ToArray()).Concat(RawWire.Field(2, "H"u8.ToArray())).ToArray();

        var (status, reason) = await wire.CallAsync("raysharing.v1.Holders", "GetOrCreate", body, client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_REQUEST", reason);
        foreach (var call in new Func<Task>[]
        {
            () => client.GetOrCreateHolderAsync("H", holderNamespace: "ns\n"),
            () => client.GetHolderAsync("H", holderNamespace: "a\0"),
            () => client.ListHoldersAsync(holderNamespace: "   "),
        })
        {
            var ex = await Assert.ThrowsAsync<ArgumentException>(() => call().Within());
            Assert.Equal("holderNamespace", ex.ParamName);
        }

        Assert.Empty(await client.ListHoldersAsync().Within());
    }

    [Theory]
    [InlineData("Register")]
    [InlineData("Fetch")]
    [InlineData("Unregister")]
    public async Task KeyCall_EmptyOrControlKey_InvalidRequest(string method)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        await client.GetOrCreateHolderAsync("H").Within();
        using var wire = new RawWire(worker.Address);
        var holder = RawWire.Field(1, RawWire.Field(2, "H"u8.ToArray()));

        foreach (var key in new[] { string.Empty, "k\0", "\r\n" })
        {
            var body = key.Length == 0 ? holder : holder.Concat(RawWire.Field(2, Encoding.UTF8.GetBytes(key))).ToArray();
            var (status, reason) = await wire.CallAsync("raysharing.v1.Holders", method, body, client.SessionToken);

            Assert.Equal(StatusCode.InvalidArgument, status);
            Assert.Equal("INVALID_REQUEST", reason);
        }
    }

    [Fact]
    public async Task GetOrCreate_NfcAndNfdSpellings_TwoHolders()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var composed = "caf\u00e9";
        var decomposed = "cafe\u0301";

        var first = await client.GetOrCreateHolderAsync(composed).Within();
        var second = await client.GetOrCreateHolderAsync(decomposed).Within();

        Assert.NotEqual(first.Incarnation, second.Incarnation);
        Assert.Equal(2, (await client.ListHoldersAsync().Within()).Count);
        await Assert.ThrowsAsync<HolderNotFoundException>(() => client.GetHolderAsync("CAF\u00c9").Within());
    }

    [Fact]
    public async Task Connect_ControlCharacterInClientName_InvalidRequest()
    {
        await using var worker = await TestWorker.StartAsync();

        var ex = await Assert.ThrowsAsync<RaySharingException>(() => worker.ConnectAsync(o => o.ClientName = "forged\nlog line"));

        Assert.Equal("INVALID_REQUEST", ex.Reason);
        Assert.Contains("client name", ex.Message);
    }
}
