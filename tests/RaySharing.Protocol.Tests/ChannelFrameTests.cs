using System.Buffers;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using Xunit;

namespace RaySharing.Protocol.Tests;

public sealed class ChannelFrameTests
{
    [Fact]
    public void Header_WriteThenRead_RoundTripsEveryField()
    {
        var header = new ChannelFrameHeader(1234, 0xDEADBEEF, ChannelOps.Response(ChannelOp.BulkGet), ChannelOps.FlagBody, ChannelOps.StatusFailed);
        var bytes = new byte[ChannelFrameHeader.Size];

        header.Write(bytes);

        Assert.True(ChannelFrameHeader.TryRead(bytes, 4096, out var read));
        Assert.Equal(header, read);
        Assert.True(read.HasBody);
        Assert.True(read.IsResponse);
        Assert.Equal(ChannelFrameHeader.Size + 1234, read.FrameLength);
    }

    [Fact]
    public void Header_Write_IsLittleEndianWithZeroReserved()
    {
        var bytes = new byte[ChannelFrameHeader.Size];

        new ChannelFrameHeader(0x0102, 0x03040506, (byte)ChannelOp.Get, 0, 0x0708).Write(bytes);

        // The golden bytes of protos/CHANNEL.md, "Frames".
        Assert.Equal(Convert.FromHexString("02010000" + "06050403" + "03" + "00" + "0807" + "00000000"), bytes);
    }

    [Fact]
    public void Header_TruncatedInput_ReadsNothingYet()
    {
        var bytes = new byte[ChannelFrameHeader.Size];
        new ChannelFrameHeader(10, 1, (byte)ChannelOp.Ping, 0, 0).Write(bytes);

        for (var length = 0; length < ChannelFrameHeader.Size; length++)
        {
            Assert.False(ChannelFrameHeader.TryRead(bytes.AsSpan(0, length), 4096, out _));
        }
    }

    [Fact]
    public void Header_PayloadOverLimit_IsProtocolError()
    {
        var bytes = new byte[ChannelFrameHeader.Size];
        new ChannelFrameHeader(4097, 1, (byte)ChannelOp.Put, 0, 0).Write(bytes);

        var ex = Assert.Throws<ChannelProtocolException>(() => ChannelFrameHeader.TryRead(bytes, 4096, out _));

        Assert.Equal(ErrorReasons.ProtocolError, ex.Reason);
        Assert.Contains("4097", ex.Message, StringComparison.Ordinal);
        Assert.True(ChannelFrameHeader.TryRead(bytes, 4097, out _));
    }

    [Fact]
    public void Header_MaxUInt32Length_IsProtocolErrorNotNegative()
    {
        var bytes = Convert.FromHexString("FFFFFFFF" + "01000000" + "02" + "00" + "0000" + "00000000");

        Assert.Throws<ChannelProtocolException>(() => ChannelFrameHeader.TryRead(bytes, int.MaxValue - 16, out _));
    }

    [Theory]
    [InlineData("00000000" + "01000000" + "08" + "00" + "0000" + "01000000")] // reserved set
    [InlineData("00000000" + "01000000" + "08" + "02" + "0000" + "00000000")] // unknown flag
    [InlineData("04000000" + "01000000" + "07" + "01" + "0000" + "00000000")] // BODY, payload too short for its length
    public void Header_BrokenRules_IsProtocolError(string hex)
    {
        Assert.Throws<ChannelProtocolException>(() => ChannelFrameHeader.TryRead(Convert.FromHexString(hex), 4096, out _));
    }

    [Fact]
    public void BodyLength_RoundTripsPast4GiB()
    {
        var payload = new byte[8];
        var length = (5L << 30) + 17;

        ChannelFrameHeader.WriteBodyLength(payload, length);

        Assert.Equal(length, ChannelFrameHeader.ReadBodyLength(payload));
    }

    [Fact]
    public void BodyLength_OverInt64_IsProtocolError()
    {
        Assert.Throws<ChannelProtocolException>(() => ChannelFrameHeader.ReadBodyLength(Convert.FromHexString("FFFFFFFFFFFFFFFF")));
    }

    [Fact]
    public void Preface_WriteThenRead_RoundTripsVersion()
    {
        var bytes = ChannelPreface.Create();

        Assert.Equal("RSCH\u0001\0\0\0"u8.ToArray(), bytes);
        Assert.Equal(ChannelPreface.Version, ChannelPreface.Read(bytes));
        Assert.Equal(7, ChannelPreface.Read(ChannelPreface.Create(7)));
    }

    [Theory]
    [InlineData("505249202A204854")] // "PRI * HT", an HTTP/2 preface
    [InlineData("5253434801000100")] // nonzero padding
    [InlineData("52534348010000")] // truncated
    public void Preface_Bad_IsProtocolError(string hex)
    {
        Assert.Throws<ChannelProtocolException>(() => ChannelPreface.Read(Convert.FromHexString(hex)));
    }

    [Fact]
    public void Error_WithDetail_RoundTrips()
    {
        var error = new ChannelError(ErrorReasons.ObjectFreed, "Object 00 was freed.", new Dictionary<string, string> { ["rs-object-id"] = new string('a', 32) });

        var read = ChannelError.Read(error.ToArray());

        Assert.Equal(error.Reason, read.Reason);
        Assert.Equal(error.Message, read.Message);
        Assert.Equal(new string('a', 32), read.Detail!["rs-object-id"]);
    }

    [Fact]
    public void Error_WithoutDetail_IsATwoElementArray()
    {
        var bytes = new ChannelError("TIMEOUT", "m").ToArray();

        // fixarray(2), fixstr(7) "TIMEOUT", fixstr(1) "m".
        Assert.Equal(Convert.FromHexString("92A754494D454F5554A16D"), bytes);
        Assert.Null(ChannelError.Read(bytes).Detail);
    }

    [Fact]
    public void Error_ExtraElements_AreSkipped()
    {
        // [reason, message, nil, 42]: a later version's extra element.
        var read = ChannelError.Read(Convert.FromHexString("94A158A159C02A"));

        Assert.Equal("X", read.Reason);
        Assert.Null(read.Detail);
    }

    [Theory]
    [InlineData("")]
    [InlineData("91A158")] // one element
    [InlineData("92A158")] // truncated
    [InlineData("922AA159")] // reason not a string
    [InlineData("C1")] // never used
    public void Error_Malformed_IsProtocolError(string hex)
    {
        Assert.Throws<ChannelProtocolException>(() => ChannelError.Read(Convert.FromHexString(hex)));
    }

    [Fact]
    public void FrameBuffer_FramesSplitAnywhere_ParseWholeAndInOrder()
    {
        var bytes = Frames(50, payloadStep: 37, ChannelOp.Put);
        foreach (var step in new[] { 1, 3, 16, 17, 100, 5000 })
        {
            using var input = new FrameBuffer(4096, initialSize: 64);
            var next = 0u;
            Feed(input, bytes, step, (header, payload) =>
            {
                Assert.Equal(next, header.RequestId);
                Assert.Equal((int)next * 37, payload.Length);
                Assert.True(payload.Span.SequenceEqual(Payload(next, 37)));
                next++;
            });

            Assert.Equal(50u, next);
            Assert.Equal(0, input.Buffered);
        }
    }

    [Fact]
    public void FrameBuffer_ArrayDetachedWithAPayload_PayloadKeptAndLaterFramesStillParse()
    {
        var bytes = Frames(20, payloadStep: 211, ChannelOp.Get);
        foreach (var step in new[] { 7, 1000, 100_000 })
        {
            using var input = new FrameBuffer(1 << 20, initialSize: 64);
            var kept = new List<(uint Id, byte[] Array, ReadOnlyMemory<byte> Payload)>();
            var next = 0u;
            Feed(input, bytes, step, (header, payload) =>
            {
                Assert.Equal(next++, header.RequestId);
                // Every other frame takes the buffer with it, as a large reply does; the rest are read in place.
                if (header.RequestId % 2 == 0)
                {
                    kept.Add((header.RequestId, input.DetachArray(), payload));
                }
                else
                {
                    Assert.True(payload.Span.SequenceEqual(Payload(header.RequestId, 211)));
                }
            });

            Assert.Equal(20u, next);
            Assert.Equal(10, kept.Count);
            foreach (var (id, array, payload) in kept)
            {
                Assert.True(payload.Span.SequenceEqual(Payload(id, 211)));
                ArrayPool<byte>.Shared.Return(array);
            }
        }
    }

    /// <summary>Frames 0..count-1 back to back, frame i carrying <see cref="Payload"/>(i, payloadStep).</summary>
    private static byte[] Frames(int count, int payloadStep, ChannelOp op)
    {
        var stream = new ArrayBufferWriter<byte>();
        for (var i = 0u; i < count; i++)
        {
            var payload = Payload(i, payloadStep);
            new ChannelFrameHeader(payload.Length, i, (byte)op, 0, 0).Write(stream.GetSpan(16));
            stream.Advance(16);
            stream.Write(payload);
        }

        return stream.WrittenSpan.ToArray();
    }

    private static byte[] Payload(uint id, int step) => Enumerable.Range(0, (int)id * step).Select(b => (byte)(b + id)).ToArray();

    /// <summary>Hands <paramref name="bytes"/> to the buffer at most <paramref name="step"/> at a time, as a socket would, and each whole frame to <paramref name="onFrame"/>.</summary>
    private static void Feed(FrameBuffer input, byte[] bytes, int step, Action<ChannelFrameHeader, ReadOnlyMemory<byte>> onFrame)
    {
        for (var at = 0; at < bytes.Length;)
        {
            var memory = input.GetReceiveMemory();
            var count = Math.Min(Math.Min(step, memory.Length), bytes.Length - at);
            bytes.AsSpan(at, count).CopyTo(memory.Span);
            input.Commit(count);
            at += count;
            while (input.TryReadFrame(out var header, out var payload))
            {
                onFrame(header, payload);
            }
        }
    }

    [Fact]
    public void FrameBuffer_OversizedHeader_ThrowsBeforeBuffering()
    {
        using var input = new FrameBuffer(1024, initialSize: 64);
        var memory = input.GetReceiveMemory();
        new ChannelFrameHeader(1025, 9, (byte)ChannelOp.Put, 0, 0).Write(memory.Span);
        input.Commit(ChannelFrameHeader.Size);

        Assert.Throws<ChannelProtocolException>(() => input.TryReadFrame(out _, out _));
    }
}
