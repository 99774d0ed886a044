using Google.Protobuf;
using Grpc.Core;
using RaySharing.Protocol;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

internal sealed class HoldersService(OwnershipGraph graph) : Holders.HoldersBase
{
    public override Task<HolderReply> GetOrCreate(GetOrCreateHolderRequest request, ServerCallContext context)
    {
        var lifetime = request.Lifetime switch
        {
            HolderLifetime.Unspecified or HolderLifetime.Detached => HolderLifetimeKind.Detached,
            HolderLifetime.Session => HolderLifetimeKind.Session,
            _ => throw WorkerErrors.InvalidRequest($"Holder lifetime {request.Lifetime} is not known."),
        };
        var (holder, created) = graph.GetOrCreateHolder(context.SessionToken(), request.Namespace, request.Name, lifetime);
        return Task.FromResult(new HolderReply { Holder = ToInfo(holder), Created = created });
    }

    public override Task<HolderReply> Get(GetHolderRequest request, ServerCallContext context) =>
        Task.FromResult(new HolderReply { Holder = ToInfo(graph.GetHolder(context.SessionToken(), request.Namespace, request.Name)) });

    public override Task<KillHolderReply> Kill(KillHolderRequest request, ServerCallContext context) =>
        Task.FromResult(new KillHolderReply { FreedObjects = (ulong)graph.KillHolder(context.SessionToken(), request.Holder.ToAddress()) });

    public override Task<ListHoldersReply> List(ListHoldersRequest request, ServerCallContext context)
    {
        var reply = new ListHoldersReply();
        reply.Holders.AddRange(graph.ListHolders(context.SessionToken(), request.Namespace).Select(ToInfo));
        return Task.FromResult(reply);
    }

    public override Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var refs = request.Envelopes.DecodeEnvelopes();
        return Task.FromResult(new RegisterReply { Count = (uint)graph.Register(session, request.Holder.ToAddress(), request.Key, refs) });
    }

    public override Task<FetchReply> Fetch(FetchRequest request, ServerCallContext context)
    {
        var page = graph.Fetch(context.SessionToken(), request.Holder.ToAddress(), request.Key, 0, int.MaxValue, int.MaxValue);
        var reply = new FetchReply();
        foreach (var envelope in page.Envelopes)
        {
            // Stored envelopes are immutable, so they are handed out without copying.
            reply.Envelopes.Add(UnsafeByteOperations.UnsafeWrap(envelope));
        }

        return Task.FromResult(reply);
    }

    public override Task<UnregisterReply> Unregister(UnregisterRequest request, ServerCallContext context) =>
        Task.FromResult(new UnregisterReply { Removed = (uint)graph.Unregister(context.SessionToken(), request.Holder.ToAddress(), request.Key) });

    public override Task<ListKeysReply> ListKeys(ListKeysRequest request, ServerCallContext context)
    {
        var reply = new ListKeysReply();
        reply.Keys.AddRange(graph.ListKeys(context.SessionToken(), request.Holder.ToAddress()));
        return Task.FromResult(reply);
    }

    private HolderInfo ToInfo(HolderSnapshot holder) => new()
    {
        Namespace = holder.Key.Namespace,
        Name = holder.Key.Name,
        Incarnation = UnsafeByteOperations.UnsafeWrap(holder.Incarnation.ToByteArray()),
        Lifetime = holder.Lifetime == HolderLifetimeKind.Session ? HolderLifetime.Session : HolderLifetime.Detached,
        WorkerAddress = graph.Identity.Address,
        WorkerId = UnsafeByteOperations.UnsafeWrap(graph.Identity.WorkerId.ToByteArray()),
        OwnedObjects = (ulong)holder.OwnedObjects,
        Keys = (uint)holder.Keys,
    };
}
