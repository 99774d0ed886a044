using Google.Protobuf;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Cluster;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class HoldersService(OwnershipGraph graph, ClusterHolders holders, HolderCalls calls, RegistryVersions versions) : Holders.HoldersBase
{
    public override Task<HolderReply> GetOrCreate(GetOrCreateHolderRequest request, ServerCallContext context) =>
        calls.GetOrCreateAsync(context.SessionToken(), request, context.CancellationToken);

    public override Task<HolderReply> Get(GetHolderRequest request, ServerCallContext context) =>
        calls.GetAsync(context.SessionToken(), request, context.CancellationToken);

    public override async Task<KillHolderReply> Kill(KillHolderRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            var reply = await holders.ForwardAsync(remote, (peer, o) => peer.Holders.KillAsync(request, o), context.CancellationToken).ConfigureAwait(false);
            graph.ForgetRemoteHolder(remote.Key, remote.Holder.Incarnation);
            return reply;
        }

        return new KillHolderReply { FreedObjects = (ulong)graph.KillHolder(session, address) };
    }

    public override async Task<ListHoldersReply> List(ListHoldersRequest request, ServerCallContext context)
    {
        var reply = new ListHoldersReply();
        reply.Holders.AddRange((await holders.ListAsync(context.SessionToken(), request.Namespace).ConfigureAwait(false)).Select(HolderCalls.ToInfo));
        return reply;
    }

    public override Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context) =>
        calls.RegisterAsync(context.SessionToken(), request, context.CancellationToken);

    public override Task<FetchReply> Fetch(FetchRequest request, ServerCallContext context) =>
        calls.FetchAsync(context.SessionToken(), request, context.CancellationToken);

    public override async Task<UnregisterReply> Unregister(UnregisterRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        var key = request.Key.ValidKey();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            return await holders.ForwardAsync(remote, (peer, o) => peer.Holders.UnregisterAsync(request, o), context.CancellationToken).ConfigureAwait(false);
        }

        using (versions.BeginChange(RegistryVersions.StripeOf(address.Name, key)))
        {
            return new UnregisterReply { Removed = (uint)graph.Unregister(session, address, key) };
        }
    }

    public override async Task<ListKeysReply> ListKeys(ListKeysRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            return await holders.ForwardAsync(remote, (peer, o) => peer.Holders.ListKeysAsync(request, o), context.CancellationToken).ConfigureAwait(false);
        }

        var reply = new ListKeysReply();
        reply.Keys.AddRange(graph.ListKeys(session, address));
        return reply;
    }

    public override async Task<ListLostReply> ListLost(ListLostRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            return await holders.ForwardAsync(remote, (peer, o) => peer.Holders.ListLostAsync(request, o), context.CancellationToken).ConfigureAwait(false);
        }

        var reply = new ListLostReply();
        foreach (var (key, index, stored) in graph.LostRefs(session, address).OrderBy(l => l.Key, StringComparer.Ordinal).ThenBy(l => l.Index))
        {
            reply.Refs.Add(new LostRef { Key = key, Index = (uint)index, Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) });
        }

        return reply;
    }
}
