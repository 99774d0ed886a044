using Google.Protobuf;
using Grpc.Core;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

internal sealed class SessionsService(OwnershipGraph graph) : Sessions.SessionsBase
{
    public override Task<OpenSessionReply> Open(OpenSessionRequest request, ServerCallContext context)
    {
        var session = graph.OpenSession(request.Namespace, TimeSpan.FromMilliseconds(request.LeaseMillis), request.ClientName);
        return Task.FromResult(new OpenSessionReply
        {
            SessionId = ByteString.CopyFrom(session.Id.ToByteArray()),
            LeaseMillis = (uint)session.Lease.TotalMilliseconds,
            WorkerId = ByteString.CopyFrom(graph.Identity.WorkerId.ToByteArray()),
            WorkerAddress = graph.Identity.Address,
        });
    }

    public override Task<KeepAliveReply> KeepAlive(KeepAliveRequest request, ServerCallContext context) =>
        Task.FromResult(new KeepAliveReply { LeaseMillis = (uint)graph.KeepAlive(context.SessionId()).TotalMilliseconds });

    public override Task<CloseSessionReply> Close(CloseSessionRequest request, ServerCallContext context)
    {
        graph.CloseSession(context.SessionId());
        return Task.FromResult(new CloseSessionReply());
    }
}
