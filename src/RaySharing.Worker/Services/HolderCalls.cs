using Google.Protobuf;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Cluster;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

/// <summary>
/// The holder calls that either transport carries (gRPC's Holders service, and the channel's HOLDER_GET, REGISTER and
/// FETCH): one implementation, so both check the same things in the same order, forward to another worker of the
/// cluster the same way, and answer alike. Requests and replies are holders.proto's messages whichever way they came.
/// </summary>
internal sealed class HolderCalls(OwnershipGraph graph, ClusterHolders holders, RemoteBorrows remoteBorrows, RemotePuts remotePuts, WorkerIdentity identity, WorkerOptions options, RegistryVersions versions)
{
    /// <summary>Envelope bytes per fetch page when the caller names no limit.</summary>
    private const int DefaultPageBytes = 4 << 20;

    /// <summary>The smallest page a caller may ask for: room for the largest envelope (16 KiB) several times.</summary>
    private const int MinPageBytes = 64 << 10;

    public async Task<HolderReply> GetOrCreateAsync(ObjectId session, GetOrCreateHolderRequest request, CancellationToken cancellationToken)
    {
        if (!WireEnums.TryLifetimeFromWire(request.Lifetime, out var sessionLifetime))
        {
            throw WorkerErrors.InvalidRequest($"Holder lifetime {request.Lifetime} is not known.");
        }

        var lifetime = sessionLifetime ? HolderLifetimeKind.Session : HolderLifetimeKind.Detached;
        var (holder, created) = await holders.GetOrCreateAsync(session, request.Namespace, request.Name, lifetime).ConfigureAwait(false);
        await PrepareForPutsAsync(session, holder, cancellationToken).ConfigureAwait(false);
        return new HolderReply { Holder = ToInfo(holder), Created = created };
    }

    public async Task<HolderReply> GetAsync(ObjectId session, GetHolderRequest request, CancellationToken cancellationToken)
    {
        var holder = await holders.GetAsync(session, request.Namespace, request.Name).ConfigureAwait(false);
        await PrepareForPutsAsync(session, holder, cancellationToken).ConfigureAwait(false);
        return new HolderReply { Holder = ToInfo(holder) };
    }

    public async Task<RegisterReply> RegisterAsync(ObjectId session, RegisterRequest request, CancellationToken cancellationToken)
    {
        var address = request.Holder.ToAddress();
        var key = request.Key.ValidKey();
        var refs = request.Envelopes.DecodeEnvelopes();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            request.Holder.Namespace = remote.Key.Namespace;
            using var payload = new PooledBuffer();
            ChannelMessages.WriteRegister(payload, ChannelHolderOf(request.Holder), request.Key, [.. request.Envelopes.Select(e => e.Memory)]);
            return await holders.ForwardAsync(remote, ChannelOp.Register, payload.WrittenMemory, static p => new RegisterReply { Count = ChannelMessages.ReadCount(p) },
                (peer, o) => peer.Holders.RegisterAsync(request, o), cancellationToken).ConfigureAwait(false);
        }

        if (remotePuts.Enabled && refs.Any(r => r.Location.WorkerId != identity.WorkerId))
        {
            // Some refs are stored on other workers of the cluster (put there for this holder): borrowed there for it first.
            return new RegisterReply { Count = (uint)await remotePuts.RegisterAsync(session, address, key, refs, request.Envelopes, cancellationToken).ConfigureAwait(false) };
        }

        return new RegisterReply { Count = (uint)graph.Register(session, address, key, refs) };
    }

    public async Task<FetchReply> FetchAsync(ObjectId session, FetchRequest request, CancellationToken cancellationToken)
    {
        var address = request.Holder.ToAddress();
        var key = request.Key.ValidKey();
        if (await holders.FindRemoteAsync(session, address).ConfigureAwait(false) is { } remote)
        {
            // The other worker pages and versions the list itself; what the fetch borrows there is this session's.
            request.Holder.Namespace = remote.Key.Namespace;
            using var payload = new PooledBuffer();
            ChannelMessages.WriteFetch(payload, new ChannelFetch(ChannelHolderOf(request.Holder), request.Key, request.Start, request.MaxCount,
                Math.Min(request.MaxBytes == 0 ? DefaultPageBytes : request.MaxBytes, FetchFrameBytes), request.ListVersion));
            var forwarded = await holders.ForwardAsync(remote, ChannelOp.Fetch, payload.WrittenMemory, ReadFetchPage,
                (peer, o) => peer.Holders.FetchAsync(request, o), cancellationToken).ConfigureAwait(false);
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

    /// <summary>A FETCH page's envelopes fit one channel frame, with room for the rest of the response.</summary>
    internal const uint FetchFrameBytes = ChannelFrameHeader.DefaultMaxPayloadBytes - (64 << 10);

    /// <summary>A FETCH reply of the channel as the gRPC reply; the envelopes copied out of the reply's pooled buffer.</summary>
    private static FetchReply ReadFetchPage(ReadOnlyMemory<byte> payload)
    {
        var page = ChannelMessages.ReadFetchPage(payload);
        var reply = new FetchReply { Total = page.Total, ListVersion = page.ListVersion };
        reply.Envelopes.AddRange(page.Envelopes.Select(e => ByteString.CopyFrom(e.Span)));
        return reply;
    }

    private static ChannelHolder ChannelHolderOf(HolderRef holder) =>
        new(holder.Namespace, holder.Name, holder.Incarnation.IsEmpty ? null : ObjectId.FromBytes(holder.Incarnation.Span));

    public static HolderInfo ToInfo(HolderSnapshot holder) => new()
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

    /// <summary>
    /// A session handed another worker's holder may put objects for it on any path, the channel's and shared
    /// memory's included, which cannot wait for that worker: it is told now, once per holder incarnation.
    /// </summary>
    private Task PrepareForPutsAsync(ObjectId session, HolderSnapshot holder, CancellationToken cancellationToken) =>
        holder.Location.WorkerId == identity.WorkerId
            ? Task.CompletedTask
            : remotePuts.PrepareAsync(session, new HolderAddress(holder.Key.Namespace, holder.Key.Name, holder.Incarnation), cancellationToken);

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
}
