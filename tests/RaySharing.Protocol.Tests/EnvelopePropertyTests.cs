using RaySharing.Wire;
using CsCheck;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>Hostile bytes at the decoder: it either returns an envelope or throws EnvelopeFormatException, nothing else.</summary>
public sealed class EnvelopePropertyTests
{
    private static readonly byte[][] Golden = [.. Vectors.ValidNames.Select(Vectors.ReadBytes)];

    /// <summary>A valid envelope with some bytes flipped, some cut, or some inserted.</summary>
    private static readonly Gen<byte[]> Mutated =
        Gen.Select(Gen.Int[0, Golden.Length - 1], Gen.Int[0, 2], Gen.Int[0, 4096], Gen.Byte.Array[1, 8])
            .Select(t =>
            {
                var (which, how, at, noise) = t;
                var bytes = Golden[which];
                var position = at % bytes.Length;
                return how switch
                {
                    0 => Flip(bytes, position, noise),
                    1 => bytes[..position],
                    _ => [.. bytes[..position], .. noise, .. bytes[position..]],
                };
            });

    [Fact]
    public void Decode_RandomBytes_ReturnsOrThrowsEnvelopeFormatExceptionOnly()
    {
        Gen.Byte.Array[0, 400].Sample(DecodesOrRejectsCleanly, iter: 20_000);
    }

    [Fact]
    public void Decode_MutatedEnvelopes_ReturnsOrThrowsEnvelopeFormatExceptionOnly()
    {
        Mutated.Sample(DecodesOrRejectsCleanly, iter: 20_000);
    }

    [Fact]
    public void Decode_DeeplyNestedTrailingElement_ThrowsEnvelopeFormatException()
    {
        // A tenth element of 15,000 nested one-element arrays: without a depth bound, skipping it overflows the stack.
        var golden = Vectors.ReadBytes("session-raw");
        byte[] bytes = [0x9a, .. golden[1..], .. Enumerable.Repeat((byte)0x91, 15_000), 0xc0];

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));

        Assert.Contains("nest deeper", ex.Message, StringComparison.Ordinal);
    }

    private static void DecodesOrRejectsCleanly(byte[] bytes)
    {
        RefEnvelope decoded;
        try
        {
            decoded = EnvelopeCodec.Decode(bytes);
        }
        catch (EnvelopeFormatException)
        {
            return;
        }

        // Whatever decodes is an envelope the encoder can write again, to the same value.
        Assert.Equal(decoded, EnvelopeCodec.Decode(EnvelopeCodec.Encode(decoded)));
    }

    private static byte[] Flip(byte[] bytes, int position, byte[] noise)
    {
        var copy = (byte[])bytes.Clone();
        for (var i = 0; i < noise.Length && position + i < copy.Length; i++)
        {
            copy[position + i] ^= (byte)(noise[i] | 1);
        }

        return copy;
    }
}
