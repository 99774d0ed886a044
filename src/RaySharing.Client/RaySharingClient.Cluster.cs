using System.Collections.Concurrent;
using RaySharing.Internal;
using RaySharing.Wire;

namespace RaySharing;

/// <summary>Reads of objects another worker of a cluster stores: straight from that worker, at its own transports' speed.</summary>
public sealed partial class RaySharingClient
{
    // One client per storing worker, opened on first use and disposed with this one. Keyed by worker id: a worker
    // restarted at the same address is another worker, whose objects these are not.
    private readonly ConcurrentDictionary<ObjectId, Lazy<Task<RaySharingClient>>> _storingWorkers = new();

    /// <summary>
    /// Reads an object that another worker of the cluster stores (<see cref="IsElsewhere"/>), of a ref this session
    /// obtained through its own worker, straight from that worker, through a session of this client's there that holds no borrows: this session's worker keeps the
    /// object alive for it, and the storing worker checks the read as its own (owner alive, not freed). The bytes
    /// then take the best path to that worker (shared memory on its host, else the channel), not a relay. False when
    /// that worker cannot be reached: the caller then asks its own worker, which relays the read or says, typed,
    /// why the object is gone.
    /// </summary>
    private async Task<bool> TryReadFromStoringWorkerAsync(ObjectRef objectRef, Func<RaySharingClient, ObjectRef, Task> read, CancellationToken cancellationToken)
    {
        // Only a ref this session obtained through its own worker (fetched, borrowed or put): that worker then took
        // it, so it is a worker of the same cluster and keeps the object alive for the session. A ref of another
        // client or session goes to this client's worker, which answers as it would for any envelope of another
        // worker (WRONG_WORKER outside a cluster).
        var location = objectRef.Envelope.Location;
        if (!ReferenceEquals(objectRef.Session, _session) || !Uri.TryCreate(location.Address, UriKind.Absolute, out var address) || Volatile.Read(ref _disposed) != 0)
        {
            return false;
        }

        RaySharingClient storing;
        var opening = _storingWorkers.GetOrAdd(location.WorkerId, _ => new Lazy<Task<RaySharingClient>>(() => ConnectStoringWorkerAsync(address)));
        try
        {
            storing = await opening.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WorkerUnavailableException or RaySharingTimeoutException)
        {
            // Unreachable now: forget it, so a later read tries again; this one goes through this client's worker.
            _storingWorkers.TryRemove(new KeyValuePair<ObjectId, Lazy<Task<RaySharingClient>>>(location.WorkerId, opening));
            ClientLog.StoringWorkerUnreachable(_logger, location.Address, ex);
            return false;
        }

        if (storing._session.WorkerId != location.WorkerId)
        {
            // Another worker answers at that address now: the one that stored the object is gone.
            return false;
        }

        try
        {
            await read(storing, new ObjectRef(storing, objectRef.Id, objectRef.EnvelopeBytes, objectRef.Envelope, origin: null) { Session = storing._session }).ConfigureAwait(false);
            return true;
        }
        catch (WorkerUnavailableException ex)
        {
            ClientLog.StoringWorkerUnreachable(_logger, location.Address, ex);
            return false;
        }
    }

    private async Task<RaySharingClient> ConnectStoringWorkerAsync(Uri address)
    {
        var options = _options.Clone();
        options.Address = address;
        return await ConnectAsync(options, _stopping.Token).ConfigureAwait(false);
    }

    /// <summary>Closes the sessions opened on storing workers.</summary>
    private async Task DisposeStoringWorkersAsync()
    {
        foreach (var opening in _storingWorkers.Values)
        {
            if (opening.IsValueCreated && opening.Value.IsCompletedSuccessfully)
            {
                await opening.Value.Result.DisposeAsync().ConfigureAwait(false);
            }
        }

        _storingWorkers.Clear();
    }
}
