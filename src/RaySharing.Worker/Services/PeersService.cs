using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

/// <summary>The calls other workers of the cluster make on this one about objects put for their holders (peers.proto).</summary>
[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class PeersService(OwnershipGraph graph, ILogger<PeersService> logger) : Peers.PeersBase
{
    public override Task<AttachStoreReply> AttachStore(AttachStoreRequest request, ServerCallContext context)
    {
        var address = request.Holder.ToAddress();
        if (address.Incarnation is null)
        {
            throw WorkerErrors.InvalidRequest("AttachStore names a holder incarnation.");
        }

        if (request.WorkerId.Length != ObjectId.Length || request.WorkerAddress.Length == 0)
        {
            throw WorkerErrors.InvalidRequest("AttachStore names the storing worker: its 16-byte id and its address.");
        }

        graph.AttachStore(context.SessionToken(), address, new WorkerLocation(request.WorkerAddress, ObjectId.FromBytes(request.WorkerId.Span)));
        return Task.FromResult(new AttachStoreReply());
    }

    public override Task<HolderDiedReply> HolderDied(HolderDiedRequest request, ServerCallContext context)
    {
        graph.RequireSession(context.SessionToken());
        var address = request.Holder.ToAddress();
        if (address.Incarnation is not { } incarnation || address.Namespace.Length == 0)
        {
            throw WorkerErrors.InvalidRequest("HolderDied names a holder by namespace, name and incarnation.");
        }

        var owner = new ObjectOwner(OwnerKind.Holder, address.Namespace, address.Name, incarnation);
        var why = request.Reason.Length == 0 ? "the holder died" : request.Reason;
        if (graph.BuryProxy(owner, why))
        {
            WorkerLog.ProxyDied(logger, owner.Namespace, owner.Name, owner.Incarnation, why);
        }

        return Task.FromResult(new HolderDiedReply());
    }
}
