using Grpc.Core;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Objects whose envelopes name another worker of the cluster as where their bytes are: gets and borrows of them
/// are made there, through this worker's peer session, so that worker checks them as it checks its own (owner
/// alive, not freed, envelope intact) and its answer, errors included, comes back as it was. A worker that is gone
/// decides the answer from the directory: the owner's holder alive elsewhere means the bytes are lost
/// (OBJECT_LOST); otherwise the owner died with the worker (OWNER_DIED).
/// </summary>
internal sealed class RemoteObjects(ClusterMembership membership, ClusterHolders holders, PeerWorkers peers, RemoteBorrows borrows, WorkerIdentity identity)
{
    /// <summary>Whether <paramref name="envelope"/> names another worker of this worker's cluster as where the bytes are.</summary>
    public bool IsElsewhere(RefEnvelope envelope) => membership.Enabled && envelope.Location.WorkerId != identity.WorkerId;

    /// <summary>One unary call about <paramref name="envelope"/>'s object, made on the worker that stores it.</summary>
    public async Task<T> CallAsync<T>(RefEnvelope envelope, Func<PeerWorker, CallOptions, AsyncUnaryCall<T>> call, CancellationToken cancellationToken)
    {
        var peer = await PeerOfAsync(envelope).ConfigureAwait(false);
        try
        {
            return await peer.CallAsync(options => call(peer, options), cancellationToken).ConfigureAwait(false);
        }
        catch (PeerUnreachableException)
        {
            throw await GoneAsync(envelope).ConfigureAwait(false);
        }
    }

    /// <summary>Relays a streamed get of <paramref name="request"/>'s object from the worker that stores it.</summary>
    public async Task RelayStreamAsync(RefEnvelope envelope, GetRequest request, IServerStreamWriter<GetReply> responseStream, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        var peer = await PeerOfAsync(envelope).ConfigureAwait(false);
        // A stream has no overall deadline here (any size moves); each message has the idle timeout instead.
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            // Inside the try: opening the peer session there is the first call to a worker that may be gone.
            var options = await peer.OptionsAsync(cancellationToken).ConfigureAwait(false);
            using var call = peer.Objects.GetStream(request, options.WithCancellationToken(idle.Token));
            while (true)
            {
                idle.CancelAfter(idleTimeout);
                if (!await call.ResponseStream.MoveNext(idle.Token).ConfigureAwait(false))
                {
                    return;
                }

                await responseStream.WriteAsync(call.ResponseStream.Current, idle.Token).ConfigureAwait(false);
            }
        }
        catch (RpcException ex) when (PeerWorker.IsTransport(ex, cancellationToken))
        {
            if (idle.IsCancellationRequested)
            {
                throw WorkerErrors.StreamIdle(idleTimeout);
            }

            throw await GoneAsync(envelope).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Borrows <paramref name="envelopes"/> (all of other workers) for <paramref name="session"/> on the workers that
    /// store them; all or nothing.
    /// </summary>
    public async Task BorrowAsync(SessionState session, IReadOnlyList<RefEnvelope> envelopes, Func<int, Google.Protobuf.ByteString> bytesOf, CancellationToken cancellationToken)
    {
        var done = new List<(PeerWorker Peer, List<ObjectId> Ids)>();
        try
        {
            foreach (var group in Enumerable.Range(0, envelopes.Count).GroupBy(i => envelopes[i].Location.WorkerId))
            {
                var first = envelopes[group.First()];
                var request = new BorrowRequest();
                request.Envelopes.AddRange(group.Select(bytesOf));
                var peer = await PeerOfAsync(first).ConfigureAwait(false);
                await CallAsync(first, (p, o) => p.Objects.BorrowAsync(request, o), cancellationToken).ConfigureAwait(false);
                done.Add((peer, group.Select(i => envelopes[i].ObjectId).ToList()));
            }
        }
        catch
        {
            // A failed borrow borrows nothing: give back what the groups before it borrowed.
            foreach (var (peer, ids) in done)
            {
                borrows.GiveBack(peer, ids);
            }

            throw;
        }

        foreach (var (peer, ids) in done)
        {
            borrows.Add(session, peer, ids);
        }
    }

    /// <summary>
    /// Borrows <paramref name="request"/>'s envelopes, all stored on <paramref name="first"/>'s worker, through this
    /// worker's own peer session there (for placeholders here); returns the way there, for giving them back.
    /// </summary>
    public async Task<PeerWorker> HoldAsync(RefEnvelope first, BorrowRequest request, CancellationToken cancellationToken)
    {
        var peer = await PeerOfAsync(first).ConfigureAwait(false);
        using var payload = new PooledBuffer();
        ChannelMessages.WriteList(payload, [.. request.Envelopes.Select(e => e.Memory)]);
        try
        {
            // On that worker's channel when it offers one (a third of a gRPC call), else over gRPC.
            _ = await peer.ChannelCallAsync(ChannelOp.Borrow, payload.WrittenMemory, static _ => new BorrowReply(), cancellationToken).ConfigureAwait(false)
                ?? await peer.CallAsync(o => peer.Objects.BorrowAsync(request, o), cancellationToken).ConfigureAwait(false);
        }
        catch (PeerUnreachableException)
        {
            throw await GoneAsync(first).ConfigureAwait(false);
        }

        return peer;
    }

    private async Task<PeerWorker> PeerOfAsync(RefEnvelope envelope) =>
        await holders.WorkerAsync(envelope.Location.WorkerId).ConfigureAwait(false) is { } worker
            ? peers.Get(worker)
            : throw await GoneAsync(envelope).ConfigureAwait(false);

    /// <summary>What a get of an object whose storing worker does not answer, or is dead, must say.</summary>
    private async Task<WorkerException> GoneAsync(RefEnvelope envelope)
    {
        var location = envelope.Location;
        if (await holders.IsAliveAsync(location.WorkerId).ConfigureAwait(false) || membership.RecentlyReset)
        {
            return WorkerErrors.StoringWorkerUnavailable(envelope.ObjectId, location);
        }

        await peers.ForgetAsync(location.WorkerId).ConfigureAwait(false);
        var owner = envelope.Owner;
        if (owner.Kind == OwnerKind.Holder
            && await holders.PlacementAsync(new HolderKey(owner.Namespace, owner.Name)).ConfigureAwait(false) is { WorkerAlive: true } placement
            && placement.Incarnation == owner.Incarnation
            && placement.WorkerId != location.WorkerId)
        {
            return WorkerErrors.StoringWorkerLost(envelope.ObjectId, location);
        }

        return WorkerErrors.OwnerDied(envelope.ObjectId, owner, $"its worker {location.WorkerId} at {location.Address} died");
    }
}
