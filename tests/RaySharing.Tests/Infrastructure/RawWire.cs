using Grpc.Core;
using Grpc.Net.Client;
using RaySharing.Wire;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// Calls worker methods with hand-made protobuf bytes, to send what no well-behaved client would:
/// garbage envelopes, malformed requests, missing session headers.
/// </summary>
internal sealed class RawWire : IDisposable
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);
    private readonly GrpcChannel _channel;

    public RawWire(string address) => _channel = GrpcChannel.ForAddress(address);

    public async Task<(StatusCode Status, string? Reason)> CallAsync(string service, string method, byte[] body, ObjectId? session)
    {
        var headers = new Metadata();
        if (session is { } id)
        {
            headers.Add(WireHeaders.SessionToken, id.ToString());
        }

        var invoker = _channel.CreateCallInvoker();
        try
        {
            await invoker.AsyncUnaryCall(new Method<byte[], byte[]>(MethodType.Unary, service, method, Bytes, Bytes), null,
                new CallOptions(headers, DateTime.UtcNow.AddSeconds(10)), body).ResponseAsync.Within();
            return (StatusCode.OK, null);
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Trailers.GetValue(WireHeaders.Reason));
        }
    }

    /// <summary>A protobuf message with one length-delimited field.</summary>
    public static byte[] Field(int number, byte[] value)
    {
        var output = new List<byte> { (byte)((number << 3) | 2) };
        var length = (uint)value.Length;
        while (length >= 0x80)
        {
            output.Add((byte)(length | 0x80));
            length >>= 7;
        }

        output.Add((byte)length);
        output.AddRange(value);
        return [.. output];
    }

    public void Dispose() => _channel.Dispose();
}
