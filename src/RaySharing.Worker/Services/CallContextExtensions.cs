using Grpc.Core;
using RaySharing.Protocol;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

internal static class CallContextExtensions
{
    /// <summary>The caller's session id from the <c>rs-session-id</c> header.</summary>
    public static ObjectId SessionId(this ServerCallContext context)
    {
        var value = context.RequestHeaders.GetValue(WireHeaders.SessionId);
        if (value is null)
        {
            throw WorkerErrors.InvalidRequest($"The call has no '{WireHeaders.SessionId}' header; open a session first and send its id.");
        }

        try
        {
            return ObjectId.Parse(value);
        }
        catch (FormatException)
        {
            throw WorkerErrors.InvalidRequest($"The '{WireHeaders.SessionId}' header must be 32 hexadecimal characters; got '{value}'.");
        }
    }

    public static ObjectId? OptionalId(this Google.Protobuf.ByteString bytes, string what)
    {
        if (bytes.IsEmpty)
        {
            return null;
        }

        return ObjectId.TryFromBytes(bytes.Span, out var id)
            ? id
            : throw WorkerErrors.InvalidRequest($"The {what} must be {ObjectId.Length} bytes; got {bytes.Length}.");
    }

    public static HolderAddress ToAddress(this HolderRef? holder)
    {
        if (holder is null)
        {
            throw WorkerErrors.InvalidRequest("The request names no holder.");
        }

        return new HolderAddress(holder.Namespace, holder.Name, holder.Incarnation.OptionalId("holder incarnation"));
    }

    public static RefEnvelope DecodeEnvelope(this Google.Protobuf.ByteString bytes) =>
        EnvelopeCodec.TryDecode(bytes.Memory, out var envelope, out var error)
            ? envelope!
            : throw WorkerErrors.InvalidEnvelope(error!);
}
