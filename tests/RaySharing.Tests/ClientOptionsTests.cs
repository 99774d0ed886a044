using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class ClientOptionsTests
{
    [Fact]
    public async Task ConnectAsync_OptionsChangedAfterConnect_ClientKeepsItsSnapshot()
    {
        await using var worker = await TestWorker.StartAsync();
        var options = new RaySharingClientOptions
        {
            Address = new Uri(worker.Address),
            ChunkBytes = 64 << 10,
            MaxUnaryObjectBytes = 64 << 10,
            CallTimeout = TimeSpan.FromSeconds(10),
            StreamIdleTimeout = TimeSpan.FromSeconds(10),
            Lease = TimeSpan.FromSeconds(10),
        };
        await using var client = await RaySharingClient.ConnectAsync(options).Within();

        // Each of these would break a live client that read its options after connect: a chunk of 0 loops a
        // streaming put forever, a unary limit of 0 streams every put, a 1 ms call timeout fails every call.
        options.ChunkBytes = 0;
        options.MaxUnaryObjectBytes = 0;
        options.CallTimeout = TimeSpan.FromMilliseconds(1);
        options.StreamIdleTimeout = TimeSpan.FromMilliseconds(1);
        options.Namespace = "changed";
        options.Address = new Uri("http://127.0.0.1:1");

        var large = new byte[1 << 20];
        Random.Shared.NextBytes(large);
        var largeRef = await client.PutAsync(large).Within();
        var smallRef = await client.PutAsync("small").Within();

        Assert.Equal(large, await client.GetAsync(largeRef).Within());
        Assert.Equal("small", await client.GetAsync(smallRef).Within());
        Assert.Equal("default", client.Namespace);
        Assert.Equal(64 << 10, client.MaxUnaryObjectBytes);
    }

    [Fact]
    public async Task ConnectAsync_MinimumMaxMessageBytesWithDefaults_Connects()
    {
        await using var worker = await TestWorker.StartAsync();

        await using var client = await TestWorker.ConnectAsync(worker.Address, o => o.MaxMessageBytes = RaySharingClientOptions.MinMessageBytes);

        var bytes = new byte[new RaySharingClientOptions().MaxUnaryObjectBytes];
        var objectRef = await client.PutAsync(bytes).Within();
        Assert.Equal(bytes.Length, (await client.GetAsync(objectRef).Within()).Length);
    }

    [Theory]
    [InlineData(nameof(RaySharingClientOptions.MaxMessageBytes))]
    [InlineData(nameof(RaySharingClientOptions.MaxUnaryObjectBytes))]
    [InlineData(nameof(RaySharingClientOptions.ChunkBytes))]
    [InlineData(nameof(RaySharingClientOptions.CallTimeout))]
    [InlineData(nameof(RaySharingClientOptions.StreamIdleTimeout))]
    [InlineData(nameof(RaySharingClientOptions.ConnectTimeout))]
    [InlineData(nameof(RaySharingClientOptions.Lease))]
    [InlineData(nameof(RaySharingClientOptions.LeaseRenewInterval))]
    [InlineData(nameof(RaySharingClientOptions.Namespace))]
    [InlineData(nameof(RaySharingClientOptions.ClientName))]
    [InlineData(nameof(RaySharingClientOptions.Address))]
    public async Task ConnectAsync_OptionOutOfRange_ThrowsArgumentExceptionNamingIt(string option)
    {
        var options = new RaySharingClientOptions { Address = new Uri("http://127.0.0.1:1") };
        switch (option)
        {
            case nameof(RaySharingClientOptions.MaxMessageBytes): options.MaxMessageBytes = RaySharingClientOptions.MinMessageBytes - 1; break;
            case nameof(RaySharingClientOptions.MaxUnaryObjectBytes): options.MaxUnaryObjectBytes = options.MaxMessageBytes; break;
            case nameof(RaySharingClientOptions.ChunkBytes): options.ChunkBytes = 0; break;
            case nameof(RaySharingClientOptions.CallTimeout): options.CallTimeout = TimeSpan.Zero; break;
            case nameof(RaySharingClientOptions.StreamIdleTimeout): options.StreamIdleTimeout = Timeout.InfiniteTimeSpan; break;
            case nameof(RaySharingClientOptions.ConnectTimeout): options.ConnectTimeout = TimeSpan.FromDays(100); break;
            case nameof(RaySharingClientOptions.Lease): options.Lease = TimeSpan.FromSeconds(-1); break;
            case nameof(RaySharingClientOptions.LeaseRenewInterval): options.Lease = TimeSpan.FromSeconds(1); options.LeaseRenewInterval = TimeSpan.FromSeconds(1); break;
            case nameof(RaySharingClientOptions.Namespace): options.Namespace = string.Empty; break;
            case nameof(RaySharingClientOptions.ClientName): options.ClientName = string.Empty; break;
            case nameof(RaySharingClientOptions.Address): options.Address = new Uri("ftp://127.0.0.1/"); break;
        }

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(options).Within());

        Assert.Equal(option, ex.ParamName);
        Assert.Contains(option, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Clone_ChangedCopy_LeavesOriginal()
    {
        var original = new RaySharingClientOptions { ChunkBytes = 64 << 10 };

        var copy = original.Clone();
        copy.ChunkBytes = 128 << 10;

        Assert.Equal(64 << 10, original.ChunkBytes);
    }
}
