using Google.Protobuf;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Cluster;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class HoldersService(OwnershipGraph graph, ClusterHolders holders, RemoteBorrows remoteBorrows, RemotePuts remotePuts, WorkerIdentity identity, WorkerOptions options, RegistryVersions versions) : Holders.HoldersBase
{
    /// <summary>Envelope bytes per fetch page when the caller names no limit.</summary>
    private const int DefaultPageBytes = 4 << 20;

    /// <summary>The smallest page a caller may ask for: room for the largest envelope (16 KiB) several times.</summary>
    private const int MinPageBytes = 64 << 10;

    public override async Task<HolderReply> GetOrCreate(GetOrCreateHolderRequest request, ServerCallContext context)
    {
        if (!WireEnums.TryLifetimeFromWire(request.Lifetime, out var session))
        {
            throw WorkerErrors.InvalidRequest($"Holder lifetime {request.Lifetime} is not known.");
        }

        var lifetime = session ? HolderLifetimeKind.Session : HolderLifetimeKind.Detached;
        var (holder, created) = await holders.GetOrCreateAsync(context.SessionToken(), request.Namespace, request.Name, lifetime).ConfigureAwait(false);
        await PrepareForPutsAsync(context, holder).ConfigureAwait(false);
        return new HolderReply { Holder = ToInfo(holder), Created = created };
    }

    public override async Task<HolderReply> Get(GetHolderRequest request, ServerCallContext context)
    {
        var holder = await holders.GetAsync(context.SessionToken(), request.Namespace, request.Name).ConfigureAwait(false);
        await PrepareForPutsAsync(context, holder).ConfigureAwait(false);
        return new HolderReply { Holder = ToInfo(holder) };
    }

    /// <summary>
    /// A session handed another worker's holder may put objects for it on any path, the channel's and shared
    /// memory's included, which cannot wait for that worker: it is told now, once per holder incarnation.
    /// </summary>
    private Task PrepareForPutsAsync(ServerCallContext context, HolderSnapshot holder) =>
        holder.Location.WorkerId == identity.WorkerId
            ? Task.CompletedTask
            : remotePuts.PrepareAsync(context.SessionToken(), new HolderAddress(holder.Key.Namespace, holder.Key.Name, holder.Incarnation), context.CancellationToken);

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
        reply.Holders.AddRange((await holders.ListAsync(context.SessionToken(), request.Namespace).ConfigureAwait(false)).Select(ToInfo));
        return reply;
    }

    public override async Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        var key = request.Key.ValidKey();
        var refs = request.Envelopes.DecodeEnvelopes();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            return await holders.ForwardAsync(remote, (peer, o) => peer.Holders.RegisterAsync(request, o), context.CancellationToken).ConfigureAwait(false);
        }

        if (remotePuts.Enabled && refs.Any(r => r.Location.WorkerId != identity.WorkerId))
        {
            // Some refs are stored on other workers of the cluster (put there for this holder): borrowed there for it first.
            return new RegisterReply { Count = (uint)await remotePuts.RegisterAsync(session, address, key, refs, request.Envelopes, context.CancellationToken).ConfigureAwait(false) };
        }

        return new RegisterReply { Count = (uint)graph.Register(session, address, key, refs) };
    }

    public override async Task<FetchReply> Fetch(FetchRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var address = request.Holder.ToAddress();
        var key = request.Key.ValidKey();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            // The other worker pages and versions the list itself; what the fetch borrows there is this session's.
            request.Holder.Namespace = remote.Key.Namespace;
            var forwarded = await holders.ForwardAsync(remote, (peer, o) => peer.Holders.FetchAsync(request, o), context.CancellationToken).ConfigureAwait(false);
            remoteBorrows.Add(remote.Session, remote.Peer, forwarded.Envelopes.Select(e => EnvelopeCodec.PeekObjectId(e.Memory)));
            return forwarded;
        }

        var stripe = RegistryVersions.StripeOf(address.Name, key);
        var first = request.Start == 0;
        var version = first ? versions.VersionBeforeFirstPage(stripe) : request.ListVersion;
        if (!first && !versions.Unchanged(stripe, version))
        {
            throw WorkerErrors.ListChanged(address, key);
        }

        var page = graph.Fetch(session, address, key, (int)Math.Min(request.Start, int.MaxValue),
            request.MaxCount == 0 ? int.MaxValue : (int)Math.Min(request.MaxCount, int.MaxValue), EnvelopeBudget(request.MaxBytes));
        if (!first && !versions.Unchanged(stripe, version))
        {
            // The page may come from the new list: give back what it borrowed, so a failed page borrows nothing.
            graph.Release(session, page.Envelopes.Select(e => EnvelopeCodec.PeekObjectId(e)));
            throw WorkerErrors.ListChanged(address, key);
        }

        var reply = new FetchReply { Total = (uint)page.Total, ListVersion = version };
        foreach (var envelope in page.Envelopes)
        {
            // Stored envelopes are immutable, so they are handed out without copying.
            reply.Envelopes.Add(UnsafeByteOperations.UnsafeWrap(envelope));
        }

        return reply;
    }

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

    /// <summary>
    /// The envelope bytes one page may carry: the caller's limit (its receive limit) or the default, within
    /// the worker's own message limit, less the reply's framing: at most 4 bytes per envelope, and every
    /// envelope the worker issues is over 64 bytes, so 1/16 covers it.
    /// </summary>
    private int EnvelopeBudget(uint requested)
    {
        var message = requested == 0 ? DefaultPageBytes : (int)Math.Clamp(requested, MinPageBytes, int.MaxValue);
        message = Math.Min(message, options.MaxMessageBytes);
        return (message - 64) / 16 * 15;
    }

    private static HolderInfo ToInfo(HolderSnapshot holder) => new()
    {
        Namespace = holder.Key.Namespace,
        Name = holder.Key.Name,
        Incarnation = UnsafeByteOperations.UnsafeWrap(holder.Incarnation.ToByteArray()),
        Lifetime = WireEnums.LifetimeToWire<HolderLifetime>(holder.Lifetime == HolderLifetimeKind.Session),
        WorkerAddress = holder.Location.Address,
        WorkerId = UnsafeByteOperations.UnsafeWrap(holder.Location.WorkerId.ToByteArray()),
        OwnedObjects = (ulong)holder.OwnedObjects,
        Keys = (uint)holder.Keys,
    };
}
