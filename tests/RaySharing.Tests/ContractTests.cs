using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>The promises of protos/ the worker keeps, as a client written from the .proto files alone would meet them.</summary>
public sealed class ContractTests
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);

    [Theory]
    [InlineData(10, 1_000)]
    [InlineData(7_200_000, 60_000)]
    [InlineData(null, 10_000)]
    public async Task OpenSession_RequestedLease_ClampedToWorkerRange(int? requestedMillis, int grantedMillis)
    {
        await using var worker = await TestWorker.StartAsync(o =>
        {
            o.MinLease = TimeSpan.FromSeconds(1);
            o.MaxLease = TimeSpan.FromMinutes(1);
            o.DefaultLease = TimeSpan.FromSeconds(10);
        });

        var client = await worker.ConnectAsync(o => o.Lease = requestedMillis is { } ms ? TimeSpan.FromMilliseconds(ms) : null);

        Assert.Equal(TimeSpan.FromMilliseconds(grantedMillis), client.Lease);
    }

    [Fact]
    public async Task UnaryPut_DeclaredSizeOverUnaryLimit_ObjectTooLarge()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Put", PutRequest(size: (1 << 20) + 1, Crc(new byte[(1 << 20) + 1]), data: []), client.SessionToken);

        Assert.Equal(StatusCode.ResourceExhausted, status);
        Assert.Equal("OBJECT_TOO_LARGE", reason);
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Theory]
    [InlineData("Put")]
    [InlineData("PutStream")]
    public async Task Put_BytesCountDiffersFromDeclaredSize_InvalidRequest(string method)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        byte[] data = [1, 2];

        var (status, reason) = await PutAsync(worker.Address, client.SessionToken, method, PutRequest(size: 3, Crc(data), data));

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_REQUEST", reason);
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Theory]
    [InlineData("Put")]
    [InlineData("PutStream")]
    public async Task Put_BytesNotMatchingDeclaredChecksum_ChecksumMismatch(string method)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        byte[] data = [1, 2, 3];

        var (status, reason) = await PutAsync(worker.Address, client.SessionToken, method, PutRequest(size: 3, Crc(data) ^ 1, data));

        Assert.Equal(StatusCode.DataLoss, status);
        Assert.Equal("CHECKSUM_MISMATCH", reason);
        Assert.Equal(0, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Theory]
    [InlineData("Get", "size")]
    [InlineData("Get", "codec")]
    [InlineData("Get", "type")]
    [InlineData("Get", "checksum")]
    [InlineData("Borrow", "size")]
    [InlineData("Borrow", "type")]
    [InlineData("Borrow", "checksum")]
    public async Task ObjectCall_EnvelopeDescribingObjectDifferently_InvalidEnvelope(string method, string field)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync("value", holder).Within();
        var envelope = good.Envelope;
        var changed = field switch
        {
            "size" => envelope with { Size = envelope.Size + 1 },
            "codec" => envelope with { Codec = ObjectCodec.Raw },
            "type" => envelope with { TypeName = "Other" },
            _ => envelope with { Checksum = envelope.Checksum ^ 1 },
        };
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", method, RawWire.Field(1, EnvelopeCodec.Encode(changed)), client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_ENVELOPE", reason);
    }

    [Fact]
    public async Task FromEnvelope_IntegrityTagOrAddressChanged_AcceptedAsTheSameObject()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var reader = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync("value", holder).Within();
        var tagged = EnvelopeCodec.Encode(good.Envelope with { IntegrityTag = [1, 2, 3] });
        var readdressed = EnvelopeCodec.Encode(good.Envelope with { Location = good.Envelope.Location with { Address = "http://alias.invalid:7480" } });

        var fromTagged = await reader.BorrowFromEnvelopeAsync<string>(tagged).Within();
        var fromReaddressed = await reader.BorrowFromEnvelopeAsync<string>(readdressed).Within();

        Assert.Equal("value", await reader.GetAsync(fromTagged).Within());
        Assert.Equal("value", await reader.GetAsync(fromReaddressed).Within());
        // The tag is carried along as it came, not rewritten.
        Assert.Equal([1, 2, 3], fromTagged.Envelope.IntegrityTag);
        Assert.Equal(1, await holder.RegisterAsync("k", [fromTagged]).Within());
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(100, 1)]
    [InlineData(10_000, 3)]
    public async Task GetStream_FirstMessage_CarriesHeaderAndFirstChunk(int size, int messages)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var data = Enumerable.Range(0, size).Select(i => (byte)i).ToArray();
        var objectRef = await client.PutEncodedAsync(data, ObjectCodec.Arrow, "Table").Within();
        using var channel = GrpcChannel.ForAddress(worker.Address);
        var method = new Method<byte[], byte[]>(MethodType.ServerStreaming, "raysharing.v1.Objects", "GetStream", Bytes, Bytes);
        var request = RawWire.Field(1, objectRef.ToEnvelopeBytes()).Concat(Varint(2, 4096)).ToArray();

        var replies = new List<GetReply>();
        using (var call = channel.CreateCallInvoker().AsyncServerStreamingCall(method, null,
            new CallOptions(new Metadata { { WireHeaders.SessionToken, client.SessionToken.ToString() } }, DateTime.UtcNow.AddSeconds(30)), request))
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None).Within())
            {
                replies.Add(GetReply.Parse(call.ResponseStream.Current));
            }
        }

        Assert.Equal(messages, replies.Count);
        Assert.Equal(((ulong)size, 3UL, "Table", Crc(data)), (replies[0].Size, replies[0].Codec, replies[0].TypeName, replies[0].Checksum));
        Assert.Equal(Math.Min(size, 4096), replies[0].Data.Length);
        Assert.All(replies.Skip(1), r => Assert.Equal((0UL, 0UL, string.Empty, 0u), (r.Size, r.Codec, r.TypeName, r.Checksum)));
        Assert.Equal(data, replies.SelectMany(r => r.Data).ToArray());
    }

    private static uint Crc(byte[] data) => System.IO.Hashing.Crc32.HashToUInt32(data);

    /// <summary>A PutRequest: a RAW header (field 1: codec 2, size 4, checksum 5) and the data (field 2).</summary>
    private static byte[] PutRequest(ulong size, uint checksum, byte[] data)
    {
        var header = Varint(2, 2).Concat(Varint(4, size)).Concat(Varint(5, checksum)).ToArray();
        return RawWire.Field(1, header).Concat(data.Length > 0 ? RawWire.Field(2, data) : []).ToArray();
    }

    private static byte[] Varint(int field, ulong value)
    {
        var output = new List<byte> { (byte)(field << 3) };
        while (value >= 0x80)
        {
            output.Add((byte)(value | 0x80));
            value >>= 7;
        }

        output.Add((byte)value);
        return [.. output];
    }

    /// <summary>A put as one unary message, or as a stream of that one message.</summary>
    private static async Task<(StatusCode Status, string? Reason)> PutAsync(string address, ObjectId session, string method, byte[] message)
    {
        if (method == "Put")
        {
            using var wire = new RawWire(address);
            return await wire.CallAsync("raysharing.v1.Objects", "Put", message, session);
        }

        using var channel = GrpcChannel.ForAddress(address);
        var streaming = new Method<byte[], byte[]>(MethodType.ClientStreaming, "raysharing.v1.Objects", "PutStream", Bytes, Bytes);
        using var call = channel.CreateCallInvoker().AsyncClientStreamingCall(streaming, null,
            new CallOptions(new Metadata { { WireHeaders.SessionToken, session.ToString() } }, DateTime.UtcNow.AddSeconds(30)));
        try
        {
            await call.RequestStream.WriteAsync(message).Within();
            await call.RequestStream.CompleteAsync().Within();
            await call.ResponseAsync.Within();
            return (StatusCode.OK, null);
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Trailers.GetValue(WireHeaders.Reason));
        }
    }

    /// <summary>The fields of a GetReply, read from its protobuf bytes as a client in another language would.</summary>
    private sealed record GetReply(ulong Size, ulong Codec, string TypeName, uint Checksum, byte[] Data)
    {
        public static GetReply Parse(byte[] bytes)
        {
            var input = new CodedInputStream(bytes);
            ulong size = 0, codec = 0;
            uint checksum = 0;
            var typeName = string.Empty;
            byte[] data = [];
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                switch (WireFormat.GetTagFieldNumber(tag))
                {
                    case 1: size = input.ReadUInt64(); break;
                    case 2: codec = (ulong)input.ReadEnum(); break;
                    case 3: typeName = input.ReadString(); break;
                    case 4: checksum = input.ReadUInt32(); break;
                    case 5: data = input.ReadBytes().ToByteArray(); break;
                    default: input.SkipLastField(); break;
                }
            }

            return new GetReply(size, codec, typeName, checksum, data);
        }
    }
}
