using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;
using RaySharing.Internal.Channel;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// The channel as a real worker serves it (protos/CHANNEL.md): which sessions use it, that every API moves the
/// same bytes over it as over gRPC, that failures come back typed as over gRPC, the raw protocol's answers,
/// tickets, and the faults of processes killed or frozen in the middle of a transfer.
/// </summary>
public sealed class ChannelServedTests
{
    private const int MiB = 1 << 20;
    private const int SIGKILL = 9;
    private const int SIGCONT = 18;
    private const int SIGSTOP = 19;
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);

    /// <summary>The gRPC calls that carry an object's bytes, a borrow or a release: a channel client makes none of them.</summary>
    private static readonly string[] DataCalls = ["Put", "PutStream", "Get", "GetStream", "Borrow", "Release"];

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    // ---- Which sessions use the channel ----

    [Fact]
    public async Task DefaultClient_SameHost_ChannelOverUnixSocketAndSharedMemory()
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync();

        Assert.True(client.UsesChannel);
        Assert.True(client.UsesSharedMemory);
        var endpoint = client.CurrentSession.Channel!.Endpoint;
        Assert.NotNull(endpoint.UnixPath);
        Assert.StartsWith(Path.Combine(worker.SocketDirectory, $"raysharing-{Environment.ProcessId}-"), endpoint.UnixPath, StringComparison.Ordinal);
        // Only the worker's own user may connect (CHANNEL.md, Transport). The guard is for the analyzer: a Unix socket means Unix.
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(endpoint.UnixPath!));
        }
        await AssertRoundTripAsync(client, 100);
        Assert.Equal(0, worker.DataCallsOf(client));
    }

    [Fact]
    public async Task NoSharedMemory_ChannelOverTcp()
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = false);

        Assert.True(client.UsesChannel);
        Assert.False(client.UsesSharedMemory);
        var endpoint = client.CurrentSession.Channel!.Endpoint;
        Assert.Null(endpoint.UnixPath);
        Assert.Equal("127.0.0.1", endpoint.Host);
        Assert.NotEqual(new Uri(worker.Address).Port, endpoint.Port);
        await AssertRoundTripAsync(client, 100);
        Assert.Equal(0, worker.DataCallsOf(client));
    }

    [Fact]
    public async Task UseChannelFalse_GrpcOnly()
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseChannel = false);

        Assert.False(client.UsesChannel);
        await AssertRoundTripAsync(client, 100);
        Assert.Equal(1, worker.CallsOf(client, "Put"));
        Assert.Equal(1, worker.CallsOf(client, "Get"));
    }

    [Fact]
    public async Task WorkerWithoutChannel_ClientFallsBackToGrpcForEverything()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.Channel = false);
        var client = await worker.ConnectAsync();
        var network = await worker.ConnectAsync(o => o.UseSharedMemory = false);

        Assert.False(client.UsesChannel);
        Assert.False(network.UsesChannel);
        Assert.Empty(Directory.GetFiles(worker.SocketDirectory));
        foreach (var size in new[] { 0, 100, MiB + 1, 3 * MiB })
        {
            await AssertRoundTripAsync(client, size);
            await AssertRoundTripAsync(network, size);
        }

        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var owned = await network.PutEncodedAsync(Bytes(1000, 1), owner: await network.GetHolderAsync("H").Within()).Within();
        var borrowed = await client.BorrowFromEnvelopeAsync(owned.ToEnvelopeBytes()).Within();
        Assert.Equal(Bytes(1000, 1), await client.GetBytesAsync(borrowed).Within());
        await client.ReleaseAsync([borrowed]).Within();
        Assert.True(borrowed.IsReleased);
        Assert.True(worker.CallsOf(network, "Put") >= 2);
        Assert.True(worker.CallsOf(network, "PutStream") >= 2);
        Assert.True(worker.CallsOf(client, "Borrow") >= 1);
        Assert.Equal(0, worker.CallsOf(network, "IssuePutTicket") + worker.CallsOf(network, "IssueGetTicket"));
        Assert.Equal("H", holder.Name);
    }

    [Fact]
    public async Task WorkerWithoutSocketDirectory_SharedMemoryClientUsesTcpChannel()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.ChannelSocketDirectory = string.Empty);
        var client = await worker.ConnectAsync();

        Assert.True(client.UsesSharedMemory);
        Assert.True(client.UsesChannel);
        Assert.Null(client.CurrentSession.Channel!.Endpoint.UnixPath);
        Assert.True(client.CurrentSession.Channel!.Endpoint.Port > 0);
        await AssertRoundTripAsync(client, 100);
        Assert.Equal(0, worker.DataCallsOf(client));
    }

    // ---- Every API: the same bytes over the channel as over gRPC ----

    [Theory]
    [InlineData(0, "shm")]
    [InlineData(100, "shm")]
    [InlineData(MiB, "shm")]
    [InlineData(MiB + 1, "shm")]
    [InlineData(5 * MiB, "shm")]
    [InlineData(0, "tcp")]
    [InlineData(100, "tcp")]
    [InlineData(MiB, "tcp")]
    [InlineData(MiB + 1, "tcp")]
    [InlineData(5 * MiB, "tcp")]
    public async Task EveryApi_OverChannel_SameBytesAsOverGrpc(int size, string path)
    {
        await using var worker = await ServedWorker.StartAsync();
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = path == "shm");
        var grpc = await worker.ConnectGrpcOnlyAsync();
        Assert.True(channel.UsesChannel);
        Assert.False(grpc.UsesChannel);
        var data = Bytes(size, size + 17);
        var bulk = size > MiB && path == "tcp";

        // PutEncodedAsync(ReadOnlyMemory), read by both.
        var fromMemory = await channel.PutEncodedAsync(data, typeName: "blob").Within();
        Assert.Equal(data, await channel.GetBytesAsync(fromMemory).Within());
        Assert.Equal(data, await grpc.GetBytesAsync(await grpc.BorrowFromEnvelopeAsync(fromMemory.ToEnvelopeBytes()).Within()).Within());

        // PutEncodedAsync(ReadOnlySequence) in three segments, with progress.
        var sequenceProgress = new ProgressProbe();
        var fromSequence = await channel.PutEncodedAsync(Segments(data), progress: sequenceProgress).Within();
        Assert.Equal(data, await grpc.GetBytesAsync(await grpc.BorrowFromEnvelopeAsync(fromSequence.ToEnvelopeBytes()).Within()).Within());
        sequenceProgress.AssertEnded(size);

        // PutEncodedAsync(Stream), with progress.
        var streamProgress = new ProgressProbe();
        var fromStream = await channel.PutEncodedAsync(new MemoryStream(data), size, progress: streamProgress).Within();
        Assert.Equal(data, await grpc.GetBytesAsync(await grpc.BorrowFromEnvelopeAsync(fromStream.ToEnvelopeBytes()).Within()).Within());
        streamProgress.AssertEnded(size);
        Assert.Equal(Crc32.HashToUInt32(data), fromStream.Checksum);

        // Typed put and get, both ways.
        var typed = await channel.PutAsync(data).Within();
        Assert.Equal(data, await grpc.GetAsync(await grpc.BorrowFromEnvelopeAsync<byte[]>(typed.ToEnvelopeBytes()).Within()).Within());
        var typedByGrpc = await grpc.PutAsync(data).Within();
        var borrowed = await channel.BorrowFromEnvelopeAsync<byte[]>(typedByGrpc.ToEnvelopeBytes()).Within();
        Assert.Equal(data, await channel.GetAsync(borrowed).Within());

        // Bytes put over gRPC, read over the channel: GetBytesAsync and both CopyToAsync, with progress.
        var rawByGrpc = await grpc.PutEncodedAsync(data).Within();
        var rawBorrowed = await channel.BorrowFromEnvelopeAsync(rawByGrpc.ToEnvelopeBytes()).Within();
        Assert.Equal(data, await channel.GetBytesAsync(rawBorrowed).Within());
        var writer = new ArrayBufferWriter<byte>();
        var writerProgress = new ProgressProbe();
        await channel.CopyToAsync(rawBorrowed, writer, writerProgress).Within();
        Assert.Equal(data, writer.WrittenSpan.ToArray());
        writerProgress.AssertEnded(size);
        var stream = new MemoryStream();
        var copyProgress = new ProgressProbe();
        await channel.CopyToAsync(rawBorrowed, stream, copyProgress).Within();
        Assert.Equal(data, stream.ToArray());
        copyProgress.AssertEnded(size);
        using (var lease = await channel.GetLeaseAsync(rawBorrowed).Within())
        {
            Assert.Equal(data, lease.Bytes.ToArray());
        }

        // Holders: a channel put registered under a key, fetched and read over gRPC.
        var holder = await channel.GetOrCreateHolderAsync("H").Within();
        var owned = await channel.PutEncodedAsync(data, owner: holder).Within();
        await holder.RegisterAsync("k", [owned]).Within();
        var fetched = await (await grpc.GetHolderAsync("H").Within()).FetchAsync("k").Within();
        Assert.Equal(data, await grpc.GetBytesAsync(Assert.Single(fetched)).Within());

        // Release over the channel frees a session-owned object.
        var released = await channel.PutEncodedAsync(data).Within();
        var envelope = released.ToEnvelopeBytes();
        var objectsBefore = (await grpc.GetStoreStatsAsync().Within()).Objects;
        await channel.ReleaseAsync([released]).Within();
        Assert.True(released.IsReleased);
        Assert.Equal(objectsBefore - 1, (await grpc.GetStoreStatsAsync().Within()).Objects);
        await Assert.ThrowsAsync<ObjectFreedException>(() => grpc.BorrowFromEnvelopeAsync(envelope).Within());

        // Nothing of the channel client's went over gRPC's data calls; its bulk transfers took tickets.
        Assert.Equal(0, worker.DataCallsOf(channel));
        if (bulk)
        {
            Assert.True(worker.CallsOf(channel, "IssuePutTicket") >= 5);
            Assert.True(worker.CallsOf(channel, "IssueGetTicket") >= 4);
        }
        else if (path == "tcp" && size <= 100)
        {
            // Small gets are frames; small puts from a stream or a multi-segment sequence go as bodies (as gRPC streams them).
            Assert.Equal(0, worker.CallsOf(channel, "IssueGetTicket"));
        }
    }

    // ---- Typed errors over the channel ----

    [Fact]
    public async Task BorrowAndGet_FreedObject_ObjectFreedAsOverGrpc()
    {
        await using var worker = await ServedWorker.StartAsync();
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var grpc = await worker.ConnectAsync(o => o.UseChannel = false);
        var objectRef = await channel.PutEncodedAsync(Bytes(100, 1)).Within();
        var envelope = objectRef.ToEnvelopeBytes();
        await objectRef.DisposeAsync().Within();

        var overChannel = await Assert.ThrowsAsync<ObjectFreedException>(() => channel.BorrowFromEnvelopeAsync(envelope).Within());
        var overGrpc = await Assert.ThrowsAsync<ObjectFreedException>(() => grpc.BorrowFromEnvelopeAsync(envelope).Within());
        Assert.Equal(overGrpc.ObjectId, overChannel.ObjectId);
        Assert.Equal(objectRef.Id, overChannel.ObjectId);

        // A raw GET of the freed envelope answers the same reason.
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();
        using var reply = await connection.SendAsync(ChannelOp.Get, EnvelopePayload(envelope)).Within();
        Assert.Equal(ErrorReasons.ObjectFreed, reply.ReadError().Reason);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(2 * MiB)]
    public async Task Get_OwnerLetGoAndOneOfTwoRefsReleased_OtherRefStillReadsAsOverGrpc(int size)
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var grpc = await worker.ConnectGrpcOnlyAsync();
        var data = Bytes(size, 24);
        var outcomes = new List<string>();
        foreach (var reader in new[] { channel, grpc })
        {
            // Two refs of one session from the same envelope; the owner lets go, then the first ref is released: the
            // second still holds the object (a session holds a ref until it disposes it, DESIGN.md).
            var objectRef = await owner.PutEncodedAsync(data).Within();
            var first = await reader.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes()).Within();
            var second = await reader.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes()).Within();
            await owner.ReleaseAsync([objectRef]).Within();
            await reader.ReleaseAsync([first]).Within();
            outcomes.Add(await OutcomeAsync(() => reader.GetBytesAsync(second), data));
            await reader.ReleaseAsync([second]).Within();
            outcomes.Add(await OutcomeAsync(async () =>
            {
                await owner.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes());
                return data;
            }, data));
        }

        Assert.Equal(["same bytes", "ObjectFreedException", "same bytes", "ObjectFreedException"], outcomes);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(2 * MiB)]
    public async Task Get_KilledHoldersObject_OwnerDiedWithTheSameDetailAsOverGrpc(int size)
    {
        await using var worker = await ServedWorker.StartAsync();
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var grpc = await worker.ConnectGrpcOnlyAsync();
        var holder = await grpc.GetOrCreateHolderAsync("doomed").Within();
        var owned = await grpc.PutEncodedAsync(Bytes(size, 2), owner: holder).Within();
        var borrowed = await channel.BorrowFromEnvelopeAsync(owned.ToEnvelopeBytes()).Within();
        await grpc.KillHolderAsync(holder).Within();

        var overChannel = await Assert.ThrowsAsync<OwnerDiedException>(() => channel.GetBytesAsync(borrowed).Within());
        var overGrpc = await Assert.ThrowsAsync<OwnerDiedException>(() => grpc.GetBytesAsync(owned).Within());

        Assert.Equal("doomed", overChannel.HolderName);
        Assert.Equal(holder.Incarnation, overChannel.Incarnation);
        Assert.Equal(owned.Id, overChannel.ObjectId);
        Assert.Equal(overGrpc.HolderNamespace, overChannel.HolderNamespace);
        Assert.Equal(overGrpc.HolderName, overChannel.HolderName);
        Assert.Equal(overGrpc.Incarnation, overChannel.Incarnation);
        Assert.Equal(overGrpc.ObjectId, overChannel.ObjectId);
        Assert.Equal(overGrpc.OwnerSessionId, overChannel.OwnerSessionId);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(2 * MiB)]
    public async Task Put_ToKilledHolder_OwnerDiedAsOverGrpc(int size)
    {
        await using var worker = await ServedWorker.StartAsync();
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var grpc = await worker.ConnectGrpcOnlyAsync();
        var holder = await channel.GetOrCreateHolderAsync("doomed").Within();
        var grpcHolder = await grpc.GetHolderAsync("doomed").Within();
        var usedBefore = (await grpc.GetStoreStatsAsync().Within()).UsedBytes;
        await channel.KillHolderAsync(holder).Within();

        var overChannel = await Assert.ThrowsAsync<OwnerDiedException>(() => channel.PutEncodedAsync(Bytes(size, 3), owner: holder).Within());
        var overGrpc = await Assert.ThrowsAsync<OwnerDiedException>(() => grpc.PutEncodedAsync(Bytes(size, 3), owner: grpcHolder).Within());

        Assert.Equal(overGrpc.HolderName, overChannel.HolderName);
        Assert.Equal(overGrpc.HolderNamespace, overChannel.HolderNamespace);
        Assert.Equal(overGrpc.Incarnation, overChannel.Incarnation);
        Assert.Equal(usedBefore, (await grpc.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Theory]
    [InlineData(MiB)]
    [InlineData(2 * MiB)]
    public async Task Put_StoreFull_ObjectStoreFullOverChannel(int size)
    {
        await using var worker = await ServedWorker.StartAsync(o => o.StoreCapacityBytes = 4 * MiB);
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var filler = await channel.PutEncodedAsync(Bytes(3 * MiB + MiB / 2, 4)).Within();
        var usedBefore = (await channel.GetStoreStatsAsync().Within()).UsedBytes;

        await Assert.ThrowsAsync<ObjectStoreFullException>(() => channel.PutEncodedAsync(Bytes(size, 5)).Within());

        Assert.Equal(usedBefore, (await channel.GetStoreStatsAsync().Within()).UsedBytes);
        Assert.Equal(0, worker.DataCallsOf(channel));
        // The filler's ticket, and one more only when the failed put did not fit a frame.
        Assert.Equal(size > MiB ? 2 : 1, worker.CallsOf(channel, "IssuePutTicket"));
        await channel.ReleaseAsync([filler]).Within();
        Assert.Equal(Bytes(size, 5), await channel.GetBytesAsync(await channel.PutEncodedAsync(Bytes(size, 5)).Within()).Within());
    }

    [Theory]
    [InlineData(100)]
    [InlineData(2 * MiB)]
    public async Task BorrowAndGet_EnvelopeDescribingObjectDifferently_InvalidEnvelopeOverChannel(int size)
    {
        await using var worker = await ServedWorker.StartAsync();
        var channel = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var good = await channel.PutEncodedAsync(Bytes(size, 6), typeName: "T").Within();
        var changed = EnvelopeCodec.Encode(good.Envelope with { TypeName = "Other" });

        await Assert.ThrowsAsync<InvalidEnvelopeException>(() => channel.BorrowFromEnvelopeAsync(changed).Within());

        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();
        using var reply = await connection.SendAsync(ChannelOp.Get, EnvelopePayload(changed)).Within();
        Assert.Equal(ErrorReasons.InvalidEnvelope, reply.ReadError().Reason);
        Assert.Equal(0, worker.DataCallsOf(channel));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task SessionClosedOnWorker_SessionExpiredThenReplacedAndChannelWorksAgain(bool sharedMemory)
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var replaced = new TaskCompletionSource<SessionReplacedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.SessionReplaced += (_, e) => replaced.TrySetResult(e);
        var objectRef = await client.PutEncodedAsync(Bytes(100, 7)).Within();
        var oldSession = client.SessionId;

        using (var wire = new RawWire(worker.Address))
        {
            Assert.Equal(StatusCode.OK, (await wire.CallAsync("raysharing.v1.Sessions", "Close", [], client.SessionToken).Within()).Status);
        }

        var ex = await Assert.ThrowsAsync<SessionExpiredException>(() => client.GetBytesAsync(objectRef).Within());
        Assert.Equal(oldSession, ex.SessionId);
        var e = await replaced.Task.Within();
        Assert.Equal(oldSession, e.PreviousSessionId);
        Assert.NotEqual(oldSession, client.SessionId);

        Assert.True(client.UsesChannel);
        await AssertRoundTripAsync(client, 100);
        Assert.Equal(0, worker.DataCallsOf(client));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WorkerRestartedOnSameAddress_NewSessionUsesTheNewWorkersChannel(bool sharedMemory)
    {
        var first = await ServedWorker.StartAsync();
        var port = new Uri(first.Address).Port;
        var client = await TestWorker.ConnectAsync(first.Address, o =>
        {
            o.UseSharedMemory = sharedMemory;
            o.CallTimeout = TimeSpan.FromSeconds(3);
        });
        await using var dispose = client.DisposedWithin();
        var replaced = new TaskCompletionSource<SessionReplacedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.SessionReplaced += (_, e) => replaced.TrySetResult(e);
        var oldEndpoint = client.CurrentSession.Channel!.Endpoint;
        var old = await client.PutEncodedAsync(Bytes(100, 32)).Within();
        await first.DisposeAsync();

        await using var second = await ServedWorker.StartAsync(o => o.Port = port);
        var firstCall = await Record.ExceptionAsync(() => client.GetBytesAsync(old).Within());
        Assert.True(firstCall is SessionExpiredException or WorkerUnavailableException or OwnerDiedException, firstCall?.ToString() ?? "A ref of the stopped worker read bytes.");
        await replaced.Task.Within();

        Assert.True(client.UsesChannel);
        Assert.Equal(sharedMemory, client.UsesSharedMemory);
        Assert.NotEqual(oldEndpoint, client.CurrentSession.Channel!.Endpoint);
        await AssertRoundTripAsync(client, 100);
        await AssertRoundTripAsync(client, 2 * MiB);
        Assert.Equal(0, second.DataCallsOf(client));
    }

    // ---- The raw protocol against a served worker ----

    [Fact]
    public async Task Hello_WrongKey_UnauthorizedThenClosed()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Tcp).Within();
        var key = session.Key.ToArray();
        key[0] ^= 1;

        using (var hello = await connection.SendAsync(ChannelOp.Hello, ChannelMessages.Hello(session.Token, key)).Within())
        {
            Assert.Equal(ErrorReasons.Unauthorized, hello.ReadError().Reason);
        }

        await AssertClosedAsync(connection);
    }

    [Fact]
    public async Task Hello_UnknownToken_SessionExpiredThenClosed()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Unix!).Within();

        using (var hello = await connection.SendAsync(ChannelOp.Hello, ChannelMessages.Hello(ObjectId.NewId(), session.Key)).Within())
        {
            Assert.Equal(ErrorReasons.SessionExpired, hello.ReadError().Reason);
        }

        await AssertClosedAsync(connection);
    }

    [Fact]
    public async Task Hello_47Bytes_InvalidRequest()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Tcp).Within();

        using (var hello = await connection.SendAsync(ChannelOp.Hello, session.Hello.AsMemory(0, 47)).Within())
        {
            Assert.Equal(ErrorReasons.InvalidRequest, hello.ReadError().Reason);
        }

        await AssertClosedAsync(connection);
    }

    [Fact]
    public async Task Put_BeforeHello_ConnectionErrorUnauthorized()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Tcp).Within();

        var ex = await Assert.ThrowsAsync<ChannelUnavailableException>(() => connection.SendAsync(ChannelOp.Put, PutPayload(Bytes(100, 8))).Within());

        Assert.Equal(ErrorReasons.Unauthorized, Assert.IsType<ChannelProtocolException>(ex.InnerException).Reason);
        Assert.True(connection.IsBroken);
        Assert.Equal(0, (await stats.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task SecondHello_InvalidRequestAndConnectionGoesOn()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();

        using (var again = await connection.SendAsync(ChannelOp.Hello, session.Hello).Within())
        {
            Assert.Equal(ErrorReasons.InvalidRequest, again.ReadError().Reason);
        }

        var data = Bytes(1000, 9);
        using var put = await connection.SendAsync(ChannelOp.Put, PutPayload(data)).Within();
        Assert.True(put.IsOk, put.IsOk ? null : put.ReadError().ToString());
        using var get = await connection.SendAsync(ChannelOp.Get, EnvelopePayload(ChannelMessages.ReadEnvelope(put.Payload).ToArray())).Within();
        Assert.True(get.IsOk, get.IsOk ? null : get.ReadError().ToString());
        ChannelMessages.ReadObjectHeader(get.Payload, out var got);
        Assert.Equal(data, got.ToArray());
    }

    [Fact]
    public async Task Put_WrongChecksum_ChecksumMismatchAndNothingStored()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();
        var data = Bytes(5000, 10);
        var before = await stats.GetStoreStatsAsync().Within();

        using var reply = await connection.SendAsync(ChannelOp.Put, PutPayload(data, Crc32.HashToUInt32(data) ^ 1)).Within();

        Assert.Equal(ErrorReasons.ChecksumMismatch, reply.ReadError().Reason);
        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());
        Assert.False(connection.IsBroken);
    }

    [Fact]
    public async Task Put_OverUnaryLimit_ObjectTooLarge()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();

        using var reply = await connection.SendAsync(ChannelOp.Put, PutPayload(Bytes(MiB + 1, 11))).Within();

        Assert.Equal(ErrorReasons.ObjectTooLarge, reply.ReadError().Reason);
        Assert.Equal(0, (await stats.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task Get_OverUnaryLimit_ObjectTooLarge()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var big = await owner.PutEncodedAsync(Bytes(MiB + 1, 12), owner: await owner.GetOrCreateHolderAsync("H").Within()).Within();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();

        using var reply = await connection.SendAsync(ChannelOp.Get, EnvelopePayload(big.ToEnvelopeBytes())).Within();

        Assert.Equal(ErrorReasons.ObjectTooLarge, reply.ReadError().Reason);
    }

    [Fact]
    public async Task PinAndUnpin_SessionWithoutSharedMemory_InvalidRequestNamingTheAttachCall()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Tcp).Within();
        (await connection.SendAsync(ChannelOp.Hello, session.Hello).Within()).Dispose();
        byte[] envelope;
        using (var put = await connection.SendAsync(ChannelOp.Put, PutPayload(Bytes(100 << 10, 7))).Within())
        {
            envelope = ChannelMessages.ReadEnvelope(put.Payload).ToArray();
        }

        using (var pin = await connection.SendAsync(ChannelOp.Pin, EnvelopePayload(envelope)).Within())
        {
            var error = pin.ReadError();
            Assert.Equal(ErrorReasons.InvalidRequest, error.Reason);
            Assert.Contains("AttachSharedMemory", error.Message, StringComparison.Ordinal);
        }

        using var ids = new PooledBuffer();
        ChannelMessages.WriteList(ids, [EnvelopeCodec.Decode(envelope).ObjectId.ToByteArray()]);
        using var unpin = await connection.SendAsync(ChannelOp.Unpin, ids.WrittenMemory).Within();
        Assert.Equal(ErrorReasons.InvalidRequest, unpin.ReadError().Reason);
    }

    [Fact]
    public async Task PingBeforeHello_AnsweredAndUnknownOp_UnimplementedAndConnectionGoesOn()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await ChannelConnection.ConnectAsync(session.Unix!).Within();

        using (var ping = await connection.SendAsync(ChannelOp.Ping, new byte[] { 1, 2, 3 }).Within())
        {
            Assert.Equal(new byte[] { 1, 2, 3 }, ping.Payload.ToArray());
        }

        using (var hello = await connection.SendAsync(ChannelOp.Hello, session.Hello).Within())
        {
            Assert.True(hello.IsOk);
        }

        using (var unknown = await connection.SendAsync((ChannelOp)42, new byte[] { 1 }).Within())
        {
            Assert.Equal(ErrorReasons.Unimplemented, unknown.ReadError().Reason);
        }

        using var put = await connection.SendAsync(ChannelOp.Put, PutPayload(Bytes(10, 33))).Within();
        Assert.True(put.IsOk);
    }

    [Fact]
    public async Task PayloadOverLimit_ProtocolErrorAndClosed()
    {
        await using var worker = await ServedWorker.StartAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, session.Tcp.Port)).Within();
        var header = new byte[ChannelFrameHeader.Size];
        new ChannelFrameHeader(ChannelFrameHeader.DefaultMaxPayloadBytes + 1, 7, (byte)ChannelOp.Ping, 0, 0).Write(header);
        await socket.SendAsync(ChannelPreface.Create()).Within();
        await socket.SendAsync(header).Within();

        var answer = await ReadToEndAsync(socket).Within(TimeSpan.FromSeconds(10));

        Assert.True(ChannelFrameHeader.TryRead(answer.AsSpan(ChannelPreface.Size), ChannelFrameHeader.DefaultMaxPayloadBytes, out var error));
        Assert.Equal((byte)ChannelOp.ConnectionError, error.Op);
        Assert.Equal(ErrorReasons.ProtocolError, ChannelError.Read(answer.AsMemory(ChannelPreface.Size + ChannelFrameHeader.Size, error.PayloadLength)).Reason);
    }

    // ---- Tickets ----

    [Fact]
    public async Task GetTicket_OneUse()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var data = Bytes(3 * MiB, 13);
        var objectRef = await owner.PutEncodedAsync(data).Within();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var ticket = await session.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
        await using var body = await session.ConnectBodyAsync().Within();

        Assert.Equal(data, await BulkGetAsync(body, ticket).Within());
        using var second = await body.ExchangeAsync(ChannelOp.BulkGet, ticket).Within();

        Assert.False(second.HasBody);
        Assert.Equal(ErrorReasons.InvalidRequest, second.ReadError().Reason);
    }

    [Fact]
    public async Task GetTicket_OfAnotherSession_InvalidRequestAndStillTheIssuersToUse()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var data = Bytes(2 * MiB, 14);
        var objectRef = await owner.PutEncodedAsync(data).Within();
        using var issuer = await RawSession.OpenAsync(worker.Address).Within();
        using var other = await RawSession.OpenAsync(worker.Address).Within();
        var ticket = await issuer.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
        await using var otherBody = await other.ConnectBodyAsync().Within();

        using (var stolen = await otherBody.ExchangeAsync(ChannelOp.BulkGet, ticket).Within())
        {
            Assert.Equal(ErrorReasons.InvalidRequest, stolen.ReadError().Reason);
        }

        await using var issuerBody = await issuer.ConnectBodyAsync().Within();
        Assert.Equal(data, await BulkGetAsync(issuerBody, ticket).Within());
    }

    [Fact]
    public async Task PutTicket_OfAnotherSession_InvalidRequestBodyDiscardedAndStillTheIssuersToUse()
    {
        await using var worker = await ServedWorker.StartAsync();
        var reader = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        using var issuer = await RawSession.OpenAsync(worker.Address).Within();
        using var other = await RawSession.OpenAsync(worker.Address).Within();
        var data = Bytes(2 * MiB, 34);
        var body = WithTrailer(data, Crc32.HashToUInt32(data));
        var ticket = await issuer.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
        var reserved = await reader.GetStoreStatsAsync().Within();
        await using var otherBody = await other.ConnectBodyAsync().Within();

        using (var stolen = await otherBody.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(body)).Within())
        {
            Assert.Equal(ErrorReasons.InvalidRequest, stolen.ReadError().Reason);
        }

        // The body was read and dropped: the next frame on the connection is understood.
        using (var ping = await otherBody.ExchangeAsync(ChannelOp.Ping, new byte[] { 9 }).Within())
        {
            Assert.Equal(new byte[] { 9 }, ping.Payload.ToArray());
        }

        Assert.Equal(reserved, await reader.GetStoreStatsAsync().Within());
        await using var issuerBody = await issuer.ConnectBodyAsync().Within();
        using var put = await issuerBody.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(body)).Within();
        Assert.True(put.IsOk, put.IsOk ? null : put.ReadError().ToString());
        Assert.Equal(data, await reader.GetBytesAsync(await reader.BorrowFromEnvelopeAsync(ChannelMessages.ReadEnvelope(put.Payload).ToArray()).Within()).Within());
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public async Task PutTicket_BodyOfWrongLength_InvalidRequestAndReservationGivenBack(int delta)
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var data = Bytes(2 * MiB, 15);
        var before = await stats.GetStoreStatsAsync().Within();
        var ticket = await session.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
        Assert.Equal(before.UsedBytes + data.Length, (await stats.GetStoreStatsAsync().Within()).UsedBytes);
        await using var body = await session.ConnectBodyAsync().Within();
        var withTrailer = WithTrailer(data, Crc32.HashToUInt32(data));
        var sent = delta < 0 ? withTrailer.AsMemory(0, withTrailer.Length - 1) : withTrailer.Concat(new byte[delta]).ToArray();

        using (var reply = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(sent)).Within())
        {
            Assert.Equal(ErrorReasons.InvalidRequest, reply.ReadError().Reason);
        }

        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());
        Assert.False(body.IsBroken);
    }

    [Fact]
    public async Task PutTicket_WrongCrcTrailer_ChecksumMismatchAndNothingStored()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var data = Bytes(2 * MiB, 16);
        var before = await stats.GetStoreStatsAsync().Within();
        var ticket = await session.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
        await using var body = await session.ConnectBodyAsync().Within();

        using (var reply = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(WithTrailer(data, Crc32.HashToUInt32(data) ^ 1))).Within())
        {
            Assert.Equal(ErrorReasons.ChecksumMismatch, reply.ReadError().Reason);
        }

        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());

        // The ticket was spent by the failed transfer.
        using var again = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(WithTrailer(data, Crc32.HashToUInt32(data)))).Within();
        Assert.Equal(ErrorReasons.InvalidRequest, again.ReadError().Reason);
        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());
    }

    [Fact]
    public async Task PutTicket_WholeBody_StoredAndReadable()
    {
        await using var worker = await ServedWorker.StartAsync();
        var reader = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var data = Bytes(2 * MiB + 3, 17);
        var ticket = await session.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
        await using var body = await session.ConnectBodyAsync().Within();

        using var reply = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(WithTrailer(data, Crc32.HashToUInt32(data)))).Within();

        Assert.True(reply.IsOk, reply.IsOk ? null : reply.ReadError().ToString());
        var envelope = ChannelMessages.ReadEnvelope(reply.Payload).ToArray();
        Assert.Equal(data, await reader.GetBytesAsync(await reader.BorrowFromEnvelopeAsync(envelope).Within()).Within());
    }

    [Fact]
    public async Task PutTicket_NeverUsed_GivenBackAfterStreamIdleTimeout()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(1));
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var before = (await stats.GetStoreStatsAsync().Within()).UsedBytes;
        var ticket = await session.IssuePutTicketAsync(2 * MiB, 0).Within();
        Assert.Equal(before + 2 * MiB, (await stats.GetStoreStatsAsync().Within()).UsedBytes);

        await worker.AdvanceUntilAsync(TimeSpan.FromMilliseconds(500), async () => (await stats.GetStoreStatsAsync()).UsedBytes == before, "the unused put ticket's reservation is given back");

        await using var body = await session.ConnectBodyAsync().Within();
        var data = Bytes(2 * MiB, 0);
        using var late = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, new ReadOnlySequence<byte>(WithTrailer(data, Crc32.HashToUInt32(data)))).Within();
        Assert.Equal(ErrorReasons.InvalidRequest, late.ReadError().Reason);
    }

    [Fact]
    public async Task GetTicket_PinsObject_FreedAfterIssueStillReadOnce()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var data = Bytes(3 * MiB, 18);
        var objectRef = await owner.PutEncodedAsync(data).Within();
        var envelope = objectRef.ToEnvelopeBytes();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var ticket = await session.IssueGetTicketAsync(envelope).Within();

        await owner.ReleaseAsync([objectRef]).Within();
        await Assert.ThrowsAsync<ObjectFreedException>(() => owner.BorrowFromEnvelopeAsync(envelope).Within());
        await using var body = await session.ConnectBodyAsync().Within();

        Assert.Equal(data, await BulkGetAsync(body, ticket).Within());
        await Bounded.Eventually(async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the freed object's bytes go once the ticket's body was sent");
    }

    [Fact]
    public async Task SessionEnd_GivesTicketsBack()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var objectRef = await owner.PutEncodedAsync(Bytes(2 * MiB, 19)).Within();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var getTicket = await session.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
        await session.IssuePutTicketAsync(3 * MiB, 0).Within();
        await owner.ReleaseAsync([objectRef]).Within();
        Assert.Equal(5L * MiB, (await owner.GetStoreStatsAsync().Within()).UsedBytes);

        await session.CloseAsync().Within();

        await Bounded.Eventually(async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the ended session's tickets are given back");
        await using var connection = await ChannelConnection.ConnectAsync(session.Tcp).Within();
        using var hello = await connection.SendAsync(ChannelOp.Hello, session.Hello).Within();
        Assert.Equal(ErrorReasons.SessionExpired, hello.ReadError().Reason);
        Assert.Equal(16, getTicket.Length);
    }

    [Fact]
    public async Task PutTicket_ConnectionClosedMidBody_ReservationBackWithoutWaitingForAnyLease()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var before = await stats.GetStoreStatsAsync().Within();
        var ticket = await session.IssuePutTicketAsync(4 * MiB, 0).Within();
        var body = await session.ConnectBodyAsync().Within();
        using var cancel = new CancellationTokenSource();
        var stalled = new TaskCompletionSource();

        var put = body.ExchangeAsync(ChannelOp.BulkPut, ticket, 4 * MiB + ChannelMessages.ChecksumTrailerBytes, async (send, ct) =>
        {
            await send(new byte[MiB], ct);
            stalled.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
        }, cancel.Token);
        await stalled.Task.Within();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => put.Within());
        Assert.True(body.IsBroken);
        await body.DisposeAsync().Within();

        // The worker's clock never moves here: only the close can give the room back.
        await Bounded.Eventually(async () => (await stats.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the reservation of a body cut short is given back");
    }

    [Fact]
    public async Task PutTicket_WriterStallsMidBody_WorkerTimesOutClosesAndGivesRoomBack()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(1));
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var before = await stats.GetStoreStatsAsync().Within();
        var ticket = await session.IssuePutTicketAsync(4 * MiB, 0).Within();
        await using var body = await session.ConnectBodyAsync().Within();
        var stalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();

        var exchange = body.ExchangeAsync(ChannelOp.BulkPut, ticket, 4 * MiB + ChannelMessages.ChecksumTrailerBytes, async (send, ct) =>
        {
            await send(new byte[MiB], ct);
            stalled.TrySetResult();
            await resume.Task.WaitAsync(ct);
            await send(new byte[3 * MiB + ChannelMessages.ChecksumTrailerBytes], ct);
        });
        await stalled.Task.Within();
        var started = Stopwatch.StartNew();

        // The worker's clock never moves here: its frame timeout (real time) ends the body and gives the room back.
        await Bounded.Eventually(async () => (await stats.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the stalled body's reservation is given back");
        Assert.True(started.Elapsed >= TimeSpan.FromMilliseconds(800), $"The worker gave up on the stalled body after {started.Elapsed}, before its frame timeout.");

        // The worker closed the connection: the rest of the body has nowhere to go.
        resume.TrySetResult();
        var ex = await Record.ExceptionAsync(() => exchange.Within());
        Assert.True(ex is WorkerUnavailableException, ex?.ToString() ?? "The body was accepted after the worker timed it out.");
        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task SlowButSteadyBody_LongerThanFrameTimeout_NotCutOff(bool put)
    {
        // The frame timeout bounds each stretch of a body, not the whole: 64 MiB at 10 MiB/s outlasts a 4 s timeout, and
        // each stretch has 10 times its pace of margin on a loaded machine. (The worker writes bodies in 4 MiB pieces,
        // each bounded by the timeout: a reader must take 4 MiB per timeout. With 2 s and 5 times, a loaded CI machine
        // stalled one piece past the timeout.)
        await using var worker = await ServedWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(4));
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var body = await session.ConnectBodyAsync().Within();
        var data = Bytes(64 * MiB, 35);
        var started = Stopwatch.StartNew();
        if (put)
        {
            var ticket = await session.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
            var withTrailer = WithTrailer(data, Crc32.HashToUInt32(data));
            using var reply = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, withTrailer.Length, async (send, ct) =>
            {
                for (var offset = 0; offset < withTrailer.Length; offset += MiB)
                {
                    await send(withTrailer.AsMemory(offset, Math.Min(MiB, withTrailer.Length - offset)), ct);
                    await Task.Delay(100, ct);
                }
            }).Within();
            Assert.True(reply.IsOk, reply.IsOk ? null : reply.ReadError().ToString());
            var envelope = ChannelMessages.ReadEnvelope(reply.Payload).ToArray();
            Assert.Equal(data, await client.GetBytesAsync(await client.BorrowFromEnvelopeAsync(envelope).Within()).Within());
        }
        else
        {
            var objectRef = await client.PutEncodedAsync(data).Within();
            var ticket = await session.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
            using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, ticket).Within();
            Assert.True(reply.IsOk, reply.IsOk ? null : reply.ReadError().ToString());
            var received = new byte[reply.BodyLength];
            for (var offset = 0; offset < received.Length; offset += MiB)
            {
                await body.ReadBodyAsync(received.AsMemory(offset, Math.Min(MiB, received.Length - offset))).Within();
                await Task.Delay(100);
            }

            Assert.Equal(data, received);
        }

        Assert.True(started.Elapsed > TimeSpan.FromSeconds(5), $"The body took {started.Elapsed}: not slow enough to prove anything.");
    }

    [Fact]
    public async Task HalfAHeader_WorkerSendsTimeoutConnectionErrorAfterFrameTimeout()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(1));
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, session.Tcp.Port)).Within();
        var started = Stopwatch.StartNew();
        await socket.SendAsync(ChannelPreface.Create()).Within();
        await socket.SendAsync(new byte[8]).Within();

        var answer = await ReadToEndAsync(socket).Within(TimeSpan.FromSeconds(10));

        Assert.True(started.Elapsed >= TimeSpan.FromMilliseconds(900), $"The worker gave up after {started.Elapsed}, before its frame timeout.");
        Assert.Equal(ChannelPreface.Version, ChannelPreface.Read(answer));
        Assert.True(ChannelFrameHeader.TryRead(answer.AsSpan(ChannelPreface.Size), ChannelFrameHeader.DefaultMaxPayloadBytes, out var header));
        Assert.Equal((byte)ChannelOp.ConnectionError, header.Op);
        Assert.Equal(ChannelOps.StatusConnectionError, header.Status);
        Assert.Equal(0u, header.RequestId);
        Assert.Equal(ErrorReasons.Timeout, ChannelError.Read(answer.AsMemory(ChannelPreface.Size + ChannelFrameHeader.Size, header.PayloadLength)).Reason);
    }

    [Fact]
    public async Task GetTicket_ReaderClosesMidBody_PinDropped()
    {
        await using var worker = await ServedWorker.StartAsync();
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var objectRef = await owner.PutEncodedAsync(Bytes(32 * MiB, 26)).Within();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var ticket = await session.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
        await owner.ReleaseAsync([objectRef]).Within();
        var body = await session.ConnectBodyAsync().Within();

        using (var reply = await body.ExchangeAsync(ChannelOp.BulkGet, ticket).Within())
        {
            Assert.Equal(32L * MiB, reply.BodyLength);
            await body.ReadBodyAsync(new byte[MiB]).Within();
        }

        Assert.Equal(32L * MiB, (await owner.GetStoreStatsAsync().Within()).UsedBytes);
        await body.DisposeAsync().Within();

        await Bounded.Eventually(async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the pin of a body the reader left is dropped");
    }

    [Fact]
    public async Task GetTicket_NeverUsed_PinDroppedAfterStreamIdleTimeout()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(1));
        var owner = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var objectRef = await owner.PutEncodedAsync(Bytes(2 * MiB, 27)).Within();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var ticket = await session.IssueGetTicketAsync(objectRef.ToEnvelopeBytes()).Within();
        await owner.ReleaseAsync([objectRef]).Within();
        Assert.Equal(2L * MiB, (await owner.GetStoreStatsAsync().Within()).UsedBytes);

        await worker.AdvanceUntilAsync(TimeSpan.FromMilliseconds(500), async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, "the lapsed get ticket's pin is dropped");

        await using var body = await session.ConnectBodyAsync().Within();
        using var late = await body.ExchangeAsync(ChannelOp.BulkGet, ticket).Within();
        Assert.Equal(ErrorReasons.InvalidRequest, late.ReadError().Reason);
    }

    [Fact]
    public async Task ClientSourceStallsMidBulkPut_TypedTimeoutWithinStreamIdleAndRoomGivenBack()
    {
        await using var worker = await ServedWorker.StartAsync();
        var idle = TimeSpan.FromSeconds(1);
        var client = await worker.ConnectAsync(o =>
        {
            o.UseSharedMemory = false;
            o.StreamIdleTimeout = idle;
        });
        var before = await client.GetStoreStatsAsync().Within();
        var stalled = new TaskCompletionSource();
        var started = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.PutEncodedAsync(new StallingStream(2 * MiB, stalled), 8 * MiB).Within());

        Assert.True(stalled.Task.IsCompleted);
        Assert.Equal(idle, ex.Timeout);
        Assert.True(started.Elapsed < idle + TimeSpan.FromSeconds(4), $"The stalled put failed after {started.Elapsed}.");
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the stalled put's reservation is given back");
        Assert.Equal(Bytes(MiB + 5, 29), await client.GetBytesAsync(await client.PutEncodedAsync(Bytes(MiB + 5, 29)).Within()).Within());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ClientCanceledMidBody_ConnectionDroppedNothingLeakedNextTransferWorks(bool put)
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = false);
        var data = Bytes(16 * MiB, 28);
        var big = await client.PutEncodedAsync(data).Within();
        var before = await client.GetStoreStatsAsync().Within();
        using var cancel = new CancellationTokenSource();

        if (put)
        {
            var stalled = new TaskCompletionSource();
            var stalling = client.PutEncodedAsync(new StallingStream(2 * MiB, stalled), 8 * MiB, cancellationToken: cancel.Token);
            await stalled.Task.Within();
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stalling.Within());
        }
        else
        {
            var canceler = new SignalingStream(cancel.Cancel);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.CopyToAsync(big, canceler, cancellationToken: cancel.Token).Within());
        }

        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the canceled transfer leaves nothing behind");
        Assert.Equal(data, await client.GetBytesAsync(big).Within());
        var again = await client.PutEncodedAsync(new MemoryStream(data), data.Length).Within();
        Assert.Equal(data, await client.GetBytesAsync(again).Within());
        Assert.Equal(0, worker.DataCallsOf(client));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ManyConcurrentCallers_OneSessionChannel_EveryAnswerTheirOwn(bool sharedMemory)
    {
        await using var worker = await ServedWorker.StartAsync();
        var client = await worker.ConnectAsync(o => o.UseSharedMemory = sharedMemory);
        var holder = await client.GetOrCreateHolderAsync("H").Within();

        var calls = Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
        {
            // Mostly frames, some bulk bodies, some borrows and releases, all at once on one session.
            var size = i % 20 == 0 ? MiB + i : (i * 7919) % (64 * 1024);
            var data = Bytes(size, i);
            var objectRef = await client.PutEncodedAsync(data, owner: i % 2 == 0 ? holder : null);
            var borrowed = await client.BorrowFromEnvelopeAsync(objectRef.ToEnvelopeBytes());
            var got = await client.GetBytesAsync(borrowed);
            await client.ReleaseAsync([borrowed, objectRef]);
            return got.AsSpan().SequenceEqual(data);
        })).ToArray();

        Assert.All(await Task.WhenAll(calls).Within(TimeSpan.FromSeconds(60)), Assert.True);
        Assert.Equal(0, worker.DataCallsOf(client));
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task SessionClosed_ConnectionBoundToIt_ActsNoMore()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        await using var connection = await session.ConnectAsync().Within();
        var before = await stats.GetStoreStatsAsync().Within();

        await session.CloseAsync().Within();

        var reply = await Record.ExceptionAsync(async () =>
        {
            using var put = await connection.SendAsync(ChannelOp.Put, PutPayload(Bytes(1000, 30))).Within();
            Assert.Equal(ErrorReasons.SessionExpired, put.ReadError().Reason);
        });
        // Failed with SESSION_EXPIRED, or the worker closed the ended session's connection: either way nothing stored.
        Assert.True(reply is null or ChannelUnavailableException, reply?.ToString());
        Assert.Equal(before, await stats.GetStoreStatsAsync().Within());
    }

    [Fact]
    public async Task SessionClosedMidBulkPut_NothingStoredAndRoomGivenBack()
    {
        await using var worker = await ServedWorker.StartAsync();
        var stats = await worker.ConnectAsync();
        using var session = await RawSession.OpenAsync(worker.Address).Within();
        var data = Bytes(4 * MiB, 31);
        var before = await stats.GetStoreStatsAsync().Within();
        var ticket = await session.IssuePutTicketAsync(data.Length, Crc32.HashToUInt32(data)).Within();
        await using var body = await session.ConnectBodyAsync().Within();
        var body1 = WithTrailer(data, Crc32.HashToUInt32(data));

        var outcome = await Record.ExceptionAsync(async () =>
        {
            using var reply = await body.ExchangeAsync(ChannelOp.BulkPut, ticket, body1.Length, async (send, ct) =>
            {
                await send(body1.AsMemory(0, MiB), ct);
                await session.CloseAsync();
                await send(body1.AsMemory(MiB), ct);
            }).Within();
            Assert.False(reply.IsOk, "A BULK_PUT of an ended session stored its object.");
        });

        Assert.True(outcome is null or WorkerUnavailableException, outcome?.ToString());
        await Bounded.Eventually(async () => (await stats.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the ended session's body leaves nothing");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HolderKilledMidBulkPut_OwnerDiedAsOverGrpcAndNothingStored(bool channel)
    {
        await using var worker = await ServedWorker.StartAsync();
        var killer = await worker.ConnectAsync();
        var client = await worker.ConnectAsync(o =>
        {
            o.UseSharedMemory = false;
            o.UseChannel = channel;
        });
        var holder = await client.GetOrCreateHolderAsync("doomed").Within();
        var before = await killer.GetStoreStatsAsync().Within();
        var source = new CallbackStream(6 * MiB, 2 * MiB, async () => await killer.KillHolderAsync(await killer.GetHolderAsync("doomed")));

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.PutEncodedAsync(source, 6 * MiB, owner: holder).Within());

        Assert.True(source.CalledBack);
        Assert.Equal("doomed", ex.HolderName);
        Assert.Equal(holder.Incarnation, ex.Incarnation);
        Assert.Equal(client.UsesChannel, channel);
        await Bounded.Eventually(async () => (await killer.GetStoreStatsAsync()) == before, TimeSpan.FromSeconds(10), "the dead holder's put leaves nothing");
    }

    // ---- Faults: processes killed or frozen ----

    [Fact]
    public async Task BulkPut_WriterKilledMidBody_ReservationBackAndNoObject()
    {
        await using var worker = await ServedWorker.StartAsync(o => o.DefaultLease = ShortLease);
        var owner = await worker.ConnectAsync();
        await owner.GetOrCreateHolderAsync("H").Within();
        using var writer = BuildOutputs.Start("tests/RaySharing.TestPeer", "RaySharing.TestPeer", "stall-bulk-put", "--address", worker.Address, "--size", (8 * MiB).ToString(CultureInfo.InvariantCulture), "--holder", "H");
        Assert.Equal("STALLED true", await writer.WaitForLineAsync("STALLED", ProcessTimeout));
        Assert.Equal((8L * MiB, 0L), await UsedAndObjectsAsync(owner));

        writer.Kill();

        await worker.AdvanceUntilAsync(ShortLease, async () => (await owner.GetStoreStatsAsync()).UsedBytes == 0, "the killed writer's reservation is given back");
        Assert.Equal((0L, 0L), await UsedAndObjectsAsync(owner));
        Assert.Empty(await (await owner.GetHolderAsync("H").Within()).ListKeysAsync().Within());
    }

    [Fact]
    public async Task WorkerProcessFrozen_ChannelCallsAndBulkGetFailWithTypedTimeouts()
    {
        using var directory = new TempDirectory();
        using var host = Host("--port", "0", "--capacity-mb", "128", "--channel-socket-dir", directory.Path);
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        var callTimeout = TimeSpan.FromSeconds(2);
        var idleTimeout = TimeSpan.FromSeconds(3);
        var client = await TestWorker.ConnectAsync(address, o =>
        {
            o.CallTimeout = callTimeout;
            o.StreamIdleTimeout = idleTimeout;
        });
        var bulk = await TestWorker.ConnectAsync(address, o =>
        {
            o.UseSharedMemory = false;
            o.CallTimeout = callTimeout;
            o.StreamIdleTimeout = idleTimeout;
        });
        var frozen = false;
        try
        {
            Assert.True(client.UsesChannel);
            Assert.True(bulk.UsesChannel);
            var small = await client.PutEncodedAsync(Bytes(100, 20)).Within();
            var big = await bulk.PutEncodedAsync(Bytes(64 * MiB, 21)).Within();
            Assert.Equal(Bytes(100, 20), await client.GetBytesAsync(small).Within());

            // The bulk get freezes the worker once its first piece arrived: the body stops mid-way.
            var freezer = new SignalingStream(() =>
            {
                Assert.Equal(0, Signal(host.Id, SIGSTOP));
                frozen = true;
            });
            var started = Stopwatch.StartNew();
            var bulkEx = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => bulk.CopyToAsync(big, freezer).Within());
            Assert.True(frozen);
            Assert.True(started.Elapsed < idleTimeout + TimeSpan.FromSeconds(5), $"The stalled bulk get failed after {started.Elapsed}.");
            Assert.Equal(idleTimeout, bulkEx.Timeout);

            started.Restart();
            var getEx = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.GetBytesAsync(small).Within());
            AssertFailedAtDeadline(started.Elapsed, callTimeout, "GET");
            Assert.Equal(small.Id, getEx.ObjectId);
            started.Restart();
            await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.PutEncodedAsync(Bytes(100, 22)).Within());
            AssertFailedAtDeadline(started.Elapsed, callTimeout, "PUT");

            // Thawed, the worker serves the same clients again (through a new session if the old one lapsed meanwhile).
            Assert.Equal(0, Signal(host.Id, SIGCONT));
            frozen = false;
            await Bounded.Eventually(async () =>
            {
                try
                {
                    return (await client.GetBytesAsync(await client.PutEncodedAsync(Bytes(100, 25)))).AsSpan().SequenceEqual(Bytes(100, 25));
                }
                catch (Exception ex) when (ex is RaySharingException or TimeoutException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(20), "a channel round trip after SIGCONT");
            Assert.True(client.UsesChannel);
        }
        finally
        {
            if (frozen)
            {
                Signal(host.Id, SIGCONT);
            }

            await client.DisposeAsync().Within();
            await bulk.DisposeAsync().Within();
            host.Kill();
        }
    }

    [Fact]
    public async Task WorkerProcessKilledMidBulkGet_TypedFailureNeverAHang()
    {
        using var directory = new TempDirectory();
        using var host = Host("--port", "0", "--capacity-mb", "128", "--channel-socket-dir", directory.Path);
        var address = (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];
        var client = await TestWorker.ConnectAsync(address, o =>
        {
            o.UseSharedMemory = false;
            o.CallTimeout = TimeSpan.FromSeconds(3);
            o.StreamIdleTimeout = TimeSpan.FromSeconds(5);
        });
        await using var dispose = client.DisposedWithin();
        Assert.True(client.UsesChannel);
        var big = await client.PutEncodedAsync(Bytes(64 * MiB, 23)).Within();
        var killer = new SignalingStream(() => Assert.Equal(0, Signal(host.Id, SIGKILL)));

        var ex = await Record.ExceptionAsync(() => client.CopyToAsync(big, killer).Within(TimeSpan.FromSeconds(15)));

        Assert.True(ex is WorkerUnavailableException or RaySharingTimeoutException, ex?.ToString() ?? "The bulk get succeeded although its worker was killed.");
        await host.WaitForExitCodeAsync(ProcessTimeout);
    }

    [Fact]
    public async Task WorkerProcessKilled_NextWorkerInSameDirectoryRemovesItsSocket()
    {
        var directory = Directory.CreateTempSubdirectory("rs-chan-").FullName;
        try
        {
            using var first = Host("--port", "0", "--channel-socket-dir", directory);
            await first.WaitForLineAsync("listening ", ProcessTimeout);
            var socket = Assert.Single(Directory.GetFiles(directory, $"raysharing-{first.Id}-*.sock"));
            Assert.Equal(0, Signal(first.Id, SIGKILL));
            await first.WaitForExitCodeAsync(ProcessTimeout);
            Assert.True(File.Exists(socket), "A SIGKILLed worker cannot remove its socket; the next one must.");

            using var second = Host("--port", "0", "--channel-socket-dir", directory);
            var address = (await second.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..];

            Assert.False(File.Exists(socket));
            Assert.Single(Directory.GetFiles(directory, $"raysharing-{second.Id}-*.sock"));
            var client = await TestWorker.ConnectAsync(address);
            await using var dispose = client.DisposedWithin();
            Assert.True(client.UsesChannel);
            Assert.StartsWith(directory, client.CurrentSession.Channel!.Endpoint.UnixPath, StringComparison.Ordinal);
            second.Kill();
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task StaleSocketOfDeadPid_RemovedAtStart_OneOfRunningPidKept()
    {
        var directory = Directory.CreateTempSubdirectory("rs-chan-").FullName;
        try
        {
            Assert.False(Directory.Exists("/proc/999999"), "pid 999999 runs here; the test needs a pid that does not.");
            var dead = Path.Combine(directory, "raysharing-999999-abcd.sock");
            var running = Path.Combine(directory, "raysharing-1-abcd.sock");
            var other = Path.Combine(directory, "raysharing-notapid.sock");
            foreach (var file in new[] { dead, running, other })
            {
                await File.WriteAllTextAsync(file, string.Empty).Within();
            }

            await using var worker = await ServedWorker.StartAsync(o => o.ChannelSocketDirectory = directory);

            Assert.False(File.Exists(dead));
            Assert.True(File.Exists(running));
            Assert.True(File.Exists(other));
            var client = await worker.ConnectAsync();
            Assert.True(client.UsesChannel);
            Assert.NotNull(client.CurrentSession.Channel!.Endpoint.UnixPath);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // ---- Helpers ----

    private static ChildProcess Host(params string[] args) => BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", args);

    private static async Task AssertRoundTripAsync(RaySharingClient client, int size)
    {
        var data = Bytes(size, size + 1);
        var objectRef = await client.PutEncodedAsync(data).Within();
        Assert.Equal(data, await client.GetBytesAsync(objectRef).Within());
        await objectRef.DisposeAsync().Within();
    }

    private static void AssertFailedAtDeadline(TimeSpan elapsed, TimeSpan deadline, string what) =>
        Assert.True(elapsed >= deadline - TimeSpan.FromMilliseconds(250) && elapsed < deadline + TimeSpan.FromSeconds(3), $"The channel {what} to a frozen worker failed after {elapsed}, with a deadline of {deadline}.");

    private static async Task AssertClosedAsync(ChannelConnection connection)
    {
        await Bounded.Eventually(() => Task.FromResult(connection.IsBroken), TimeSpan.FromSeconds(5), "the worker closes the connection after a failed HELLO");
        await Assert.ThrowsAsync<ChannelUnavailableException>(() => connection.SendAsync(ChannelOp.Ping, new byte[] { 1 }).Within());
    }

    private static async Task<byte[]> BulkGetAsync(ChannelBodyConnection body, byte[] ticket)
    {
        using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, ticket).Within();
        Assert.True(reply.IsOk, reply.IsOk ? null : reply.ReadError().ToString());
        Assert.True(reply.HasBody);
        var header = ChannelMessages.ReadObjectHeader(reply.Payload, out _);
        var bytes = new byte[reply.BodyLength];
        await body.ReadBodyAsync(bytes).Within();
        Assert.Equal(header.Checksum, Crc32.HashToUInt32(bytes));
        return bytes;
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        var received = new List<byte>();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer)) > 0)
        {
            received.AddRange(buffer.AsSpan(0, read));
        }

        return [.. received];
    }

    private static async Task<string> OutcomeAsync(Func<Task<byte[]>> get, byte[] expected)
    {
        try
        {
            return (await get().Within()).AsSpan().SequenceEqual(expected) ? "same bytes" : "other bytes";
        }
        catch (RaySharingException ex)
        {
            return ex.GetType().Name;
        }
    }

    private static async Task<(long Used, long Objects)> UsedAndObjectsAsync(RaySharingClient client)
    {
        var stats = await client.GetStoreStatsAsync().Within();
        return (stats.UsedBytes, stats.Objects);
    }

    private static byte[] PutPayload(byte[] data, uint? checksum = null)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WritePut(payload, new ChannelPutFields(null, (int)ObjectCodec.Raw, string.Empty, checksum ?? Crc32.HashToUInt32(data)), data);
        return payload.WrittenMemory.ToArray();
    }

    private static byte[] EnvelopePayload(byte[] envelope)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteEnvelope(payload, envelope);
        return payload.WrittenMemory.ToArray();
    }

    private static byte[] WithTrailer(byte[] data, uint crc)
    {
        var body = new byte[data.Length + ChannelMessages.ChecksumTrailerBytes];
        data.CopyTo(body, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(data.Length), crc);
        return body;
    }

    private static byte[] Bytes(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Three segments (one may be empty), so a put cannot take the sequence's first span for the whole.</summary>
    private static ReadOnlySequence<byte> Segments(byte[] data)
    {
        var first = new Segment(data.AsMemory(0, data.Length / 3));
        var last = first.Append(data.AsMemory(data.Length / 3, data.Length / 3)).Append(data.AsMemory(2 * (data.Length / 3)));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }

    /// <summary>Records progress reports as they come (synchronously, unlike <see cref="Progress{T}"/>).</summary>
    private sealed class ProgressProbe : IProgress<long>
    {
        private long _last = -1;
        private long _backwards;

        public void Report(long value)
        {
            if (value < Volatile.Read(ref _last))
            {
                Interlocked.Increment(ref _backwards);
            }

            Volatile.Write(ref _last, value);
        }

        /// <summary>The last report was the whole size (an empty object may report nothing), and none went backwards.</summary>
        public void AssertEnded(long size)
        {
            Assert.Equal(0, Volatile.Read(ref _backwards));
            var last = Volatile.Read(ref _last);
            Assert.True(last == size || (size == 0 && last == -1), $"The last progress report was {last}, not {size}.");
        }
    }

    /// <summary>A directory of the test's own, for a worker's socket: removed with whatever a killed worker left in it.</summary>
    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("rs-chan-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
    /// <summary>Gives <c>size</c> pattern bytes, awaiting <c>callback</c> once when <c>at</c> bytes were given.</summary>
    private sealed class CallbackStream(long size, long at, Func<Task> callback) : ReadOnlyTestStream
    {
        public bool CalledBack { get; private set; }

        public override long Length => size;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Given >= at && !CalledBack)
            {
                CalledBack = true;
                await callback().WaitAsync(cancellationToken);
            }

            var count = (int)Math.Min(buffer.Length, (Given < at ? at : size) - Given);
            buffer.Span[..count].Fill(3);
            Given += count;
            return count;
        }
    }

    /// <summary>A destination that runs <paramref name="onFirstWrite"/> once, when the first bytes arrive, and keeps what it gets.</summary>
    private sealed class SignalingStream(Action onFirstWrite) : MemoryStream
    {
        private int _signaled;

        public override void Write(byte[] buffer, int offset, int count)
        {
            Fire();
            base.Write(buffer, offset, count);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Fire();
            base.Write(buffer);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Fire();
            return base.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Fire();
            return base.WriteAsync(buffer, offset, count, cancellationToken);
        }

        private void Fire()
        {
            if (Interlocked.Exchange(ref _signaled, 1) == 0)
            {
                onFirstWrite();
            }
        }
    }

    /// <summary>
    /// A real worker on loopback port 0 with its channel's Unix socket in a directory of its own, counting the gRPC
    /// calls each session makes (by the session token they carry), so a test can prove what went over the channel.
    /// Its leases run on a fake clock, as <see cref="TestWorker"/>'s do.
    /// </summary>
    private sealed class ServedWorker : IAsyncDisposable
    {
        private readonly List<RaySharingClient> _clients = [];
        private readonly ConcurrentDictionary<(string Token, string Method), int> _calls;
        private readonly bool _ownsDirectory;

        private ServedWorker(RaySharingWorker worker, FakeTimeProvider clock, ConcurrentDictionary<(string, string), int> calls, string socketDirectory, bool ownsDirectory)
        {
            Worker = worker;
            Clock = clock;
            _calls = calls;
            SocketDirectory = socketDirectory;
            _ownsDirectory = ownsDirectory;
        }

        public RaySharingWorker Worker { get; }

        public FakeTimeProvider Clock { get; }

        public string SocketDirectory { get; }

        public string Address => Worker.Address;

        public static async Task<ServedWorker> StartAsync(Action<WorkerOptions>? configure = null)
        {
            var directory = Directory.CreateTempSubdirectory("rs-served-").FullName;
            var options = new WorkerOptions { Port = 0, LeaseCheckInterval = TimeSpan.FromMilliseconds(50), ChannelSocketDirectory = directory, StoreCapacityBytes = 256L * MiB };
            configure?.Invoke(options);
            var ownsDirectory = options.ChannelSocketDirectory == directory;
            if (!ownsDirectory)
            {
                Directory.Delete(directory);
            }

            var clock = new FakeTimeProvider();
            var calls = new ConcurrentDictionary<(string, string), int>();
            var worker = await RaySharingWorker.StartAsync(options, clock, configureEndpoints: app => app.Use(async (HttpContext context, RequestDelegate next) =>
            {
                var token = context.Request.Headers[WireHeaders.SessionToken].ToString();
                var method = context.Request.Path.Value is { } path ? path[(path.LastIndexOf('/') + 1)..] : string.Empty;
                calls.AddOrUpdate((token, method), 1, (_, n) => n + 1);
                await next(context);
            })).Within();
            return new ServedWorker(worker, clock, calls, options.ChannelSocketDirectory, ownsDirectory);
        }

        public Task<RaySharingClient> ConnectAsync(Action<RaySharingClientOptions>? configure = null) => TestWorker.ConnectAsync(Address, configure, _clients);

        /// <summary>A client with shared memory and the channel off: everything over gRPC, the reference the channel is compared with.</summary>
        public Task<RaySharingClient> ConnectGrpcOnlyAsync() => ConnectAsync(o =>
        {
            o.UseSharedMemory = false;
            o.UseChannel = false;
        });

        /// <summary>How many gRPC calls of <paramref name="method"/> (the name after the service) the client's current session made.</summary>
        public int CallsOf(RaySharingClient client, string method) => _calls.GetValueOrDefault((client.SessionToken.ToString(), method));

        /// <summary>How many gRPC calls that move an object's bytes, borrow or release the client's current session made.</summary>
        public int DataCallsOf(RaySharingClient client) => DataCalls.Sum(m => CallsOf(client, m));

        /// <inheritdoc cref="TestWorker.AdvanceUntilAsync"/>
        public Task AdvanceUntilAsync(TimeSpan step, Func<Task<bool>> condition, string what) =>
            Bounded.Eventually(() =>
            {
                Clock.Advance(step);
                return condition();
            }, TimeSpan.FromSeconds(10), what);

        public async ValueTask DisposeAsync()
        {
            try
            {
                foreach (var client in _clients)
                {
                    await client.DisposeAsync().Within();
                }
            }
            finally
            {
                await Worker.DisposeAsync().Within();
                if (_ownsDirectory)
                {
                    Directory.Delete(SocketDirectory, recursive: true);
                }
            }
        }
    }

    /// <summary>
    /// A session opened with hand-made gRPC calls, to speak the channel's raw protocol with its credentials: the
    /// token and key of <c>OpenSessionReply</c>, the channel's endpoints, and the ticket calls.
    /// </summary>
    private sealed class RawSession : IDisposable
    {
        private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);
        private readonly GrpcChannel _channel;

        private RawSession(GrpcChannel channel, ObjectId token, byte[] key, ChannelEndpoint tcp, ChannelEndpoint? unix)
        {
            _channel = channel;
            Token = token;
            Key = key;
            Tcp = tcp;
            Unix = unix;
        }

        public ObjectId Token { get; }

        public byte[] Key { get; }

        public ChannelEndpoint Tcp { get; }

        public ChannelEndpoint? Unix { get; }

        /// <summary>HELLO's 48 bytes.</summary>
        public byte[] Hello => ChannelMessages.Hello(Token, Key);

        public static async Task<RawSession> OpenAsync(string address)
        {
            var channel = GrpcChannel.ForAddress(address);
            var reply = await CallAsync(channel, "raysharing.v1.Sessions", "Open", [], token: null);
            byte[]? token = null;
            byte[]? offer = null;
            foreach (var (field, value) in Fields(reply))
            {
                if (field == 5)
                {
                    token = value;
                }
                else if (field == 8)
                {
                    offer = value;
                }
            }

            Assert.NotNull(token);
            Assert.NotNull(offer);
            string? host = null;
            var port = 0;
            string? unixPath = null;
            byte[]? key = null;
            foreach (var (field, value) in Fields(offer))
            {
                switch (field)
                {
                    case 1:
                        host = System.Text.Encoding.UTF8.GetString(value);
                        break;
                    case 2:
                        port = (int)BinaryPrimitives.ReadUInt64LittleEndian(value);
                        break;
                    case 3:
                        unixPath = System.Text.Encoding.UTF8.GetString(value);
                        break;
                    case 4:
                        key = value;
                        break;
                }
            }

            Assert.NotNull(host);
            Assert.NotNull(key);
            return new RawSession(channel, ObjectId.FromBytes(token), key, ChannelEndpoint.Tcp(host, port), string.IsNullOrEmpty(unixPath) ? null : ChannelEndpoint.Unix(unixPath));
        }

        /// <summary>A call connection that said HELLO.</summary>
        public async Task<ChannelConnection> ConnectAsync()
        {
            var connection = await ChannelConnection.ConnectAsync(Tcp);
            using var hello = await connection.SendAsync(ChannelOp.Hello, Hello);
            Assert.True(hello.IsOk, hello.IsOk ? null : hello.ReadError().ToString());
            return connection;
        }

        /// <summary>A body connection that said HELLO.</summary>
        public async Task<ChannelBodyConnection> ConnectBodyAsync()
        {
            var body = await ChannelBodyConnection.ConnectAsync(Tcp);
            using var hello = await body.ExchangeAsync(ChannelOp.Hello, Hello);
            Assert.True(hello.IsOk, hello.IsOk ? null : hello.ReadError().ToString());
            return body;
        }

        public async Task<byte[]> IssueGetTicketAsync(byte[] envelope) =>
            TicketOf(await CallAsync(_channel, "raysharing.v1.Objects", "IssueGetTicket", RawWire.Field(1, envelope), Token));

        /// <summary>A put ticket for a session-owned raw object of <paramref name="size"/> bytes.</summary>
        public async Task<byte[]> IssuePutTicketAsync(long size, uint checksum)
        {
            using var header = new MemoryStream();
            var output = new CodedOutputStream(header);
            output.WriteTag(2, WireFormat.WireType.Varint);
            output.WriteEnum((int)ObjectCodec.Raw);
            output.WriteTag(4, WireFormat.WireType.Varint);
            output.WriteUInt64((ulong)size);
            output.WriteTag(5, WireFormat.WireType.Varint);
            output.WriteUInt32(checksum);
            output.Flush();
            return TicketOf(await CallAsync(_channel, "raysharing.v1.Objects", "IssuePutTicket", RawWire.Field(1, header.ToArray()), Token));
        }

        public Task CloseAsync() => CallAsync(_channel, "raysharing.v1.Sessions", "Close", [], Token);

        public void Dispose() => _channel.Dispose();

        private static byte[] TicketOf(byte[] reply)
        {
            var ticket = Fields(reply).Single(f => f.Field == 1).Value;
            Assert.Equal(16, ticket.Length);
            return ticket;
        }

        private static async Task<byte[]> CallAsync(GrpcChannel channel, string service, string method, byte[] body, ObjectId? token)
        {
            var headers = new Metadata();
            if (token is { } id)
            {
                headers.Add(WireHeaders.SessionToken, id.ToString());
            }

            return await channel.CreateCallInvoker().AsyncUnaryCall(new Method<byte[], byte[]>(MethodType.Unary, service, method, Raw, Raw), null,
                new CallOptions(headers, DateTime.UtcNow.AddSeconds(10)), body).ResponseAsync.Within();
        }

        /// <summary>A protobuf message's fields: length-delimited ones as their bytes, varints as 8 little-endian bytes.</summary>
        private static List<(int Field, byte[] Value)> Fields(byte[] message)
        {
            var fields = new List<(int, byte[])>();
            var input = new CodedInputStream(message);
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                var field = WireFormat.GetTagFieldNumber(tag);
                switch (WireFormat.GetTagWireType(tag))
                {
                    case WireFormat.WireType.LengthDelimited:
                        fields.Add((field, input.ReadBytes().ToByteArray()));
                        break;
                    case WireFormat.WireType.Varint:
                        var value = new byte[8];
                        BinaryPrimitives.WriteUInt64LittleEndian(value, input.ReadUInt64());
                        fields.Add((field, value));
                        break;
                    default:
                        input.SkipLastField();
                        break;
                }
            }

            return fields;
        }
    }
}
