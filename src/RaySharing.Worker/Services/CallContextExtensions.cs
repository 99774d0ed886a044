using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

internal static class CallContextExtensions
{
    /// <summary>The caller's session token from the <c>rs-session-token</c> header.</summary>
    public static ObjectId SessionToken(this ServerCallContext context)
    {
        // Read from Kestrel's headers: ServerCallContext.RequestHeaders copies every header into new
        // Metadata on each call, a cost every put, fetch and get would pay.
        var value = context.GetHttpContext().Request.Headers[WireHeaders.SessionToken];
        if (value.Count == 0)
        {
            throw WorkerErrors.InvalidRequest($"The call has no '{WireHeaders.SessionToken}' header; open a session first and send its token.");
        }

        return ObjectId.TryParse(value[0], out var token)
            ? token
            : throw WorkerErrors.InvalidRequest($"The '{WireHeaders.SessionToken}' header must be 32 hexadecimal characters.");
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

    /// <summary>A registry key that follows the name rules (protos/holders.proto); otherwise INVALID_REQUEST.</summary>
    public static string ValidKey(this string key) =>
        NameRules.Problem(key, "key") is { } problem ? throw WorkerErrors.InvalidRequest(problem) : key;

    public static RefEnvelope DecodeEnvelope(this Google.Protobuf.ByteString bytes) => DecodeEnvelope(bytes.Memory);

    /// <summary>An envelope from the bytes a request carried; INVALID_ENVELOPE when they are not one.</summary>
    public static RefEnvelope DecodeEnvelope(ReadOnlyMemory<byte> bytes) =>
        EnvelopeCodec.TryDecode(bytes, out var envelope, out var error)
            ? envelope!
            : throw WorkerErrors.InvalidEnvelope(error!);

    public static RefEnvelope[] DecodeEnvelopes(this Google.Protobuf.Collections.RepeatedField<Google.Protobuf.ByteString> envelopes)
    {
        var refs = new RefEnvelope[envelopes.Count];
        for (var i = 0; i < refs.Length; i++)
        {
            refs[i] = envelopes[i].DecodeEnvelope();
        }

        return refs;
    }
}
