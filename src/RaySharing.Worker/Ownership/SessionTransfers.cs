using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// A put whose room is reserved and whose bytes are still to come: written in place in the arena between Create
/// and Seal, or sent as a channel body under a put ticket.
/// </summary>
internal sealed record PendingCreate(StoredBytes Bytes, HolderAddress? Owner, ObjectCodec Codec, string TypeName, long ExpiresAtMillis);

/// <summary>A get ticket: the object, pinned from the ticket's issue until its BULK_GET sent the bytes or it expired.</summary>
internal sealed record PendingRead(StoredObject Object, long ExpiresAtMillis);

/// <summary>
/// What a session holds in the store between its calls: the objects it pinned to read in place (same host), the
/// objects it is writing (in place, or as a channel body under a put ticket) and the objects it may read once as
/// a channel body (get tickets). Everything here is given back when the session ends, so a client that dies
/// holding a zero-copy lease, a ticket, or half-way through a write leaves nothing behind once its lease lapses.
/// </summary>
/// <remarks>Its lock is a leaf: nothing is locked while holding it but the arena allocator's.</remarks>
internal sealed class SessionTransfers
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectId, (StoredBytes Bytes, int Count)> _pins = [];
    private readonly Dictionary<ObjectId, PendingCreate> _creates = [];
    private readonly Dictionary<ObjectId, PendingRead> _reads = [];
    private bool _closed;

    /// <summary>Records a pin the caller already took on <paramref name="bytes"/>; false once the session ended (the caller unpins).</summary>
    public bool TryAddPin(ObjectId id, StoredBytes bytes)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _pins[id] = _pins.TryGetValue(id, out var pin) ? (pin.Bytes, pin.Count + 1) : (bytes, 1);
            return true;
        }
    }

    /// <summary>Drops one pin per id; ids not pinned are ignored.</summary>
    public void Unpin(IEnumerable<ObjectId> ids)
    {
        List<StoredBytes>? unpin = null;
        lock (_gate)
        {
            foreach (var id in ids)
            {
                if (!_pins.TryGetValue(id, out var pin))
                {
                    continue;
                }

                if (pin.Count == 1)
                {
                    _pins.Remove(id);
                }
                else
                {
                    _pins[id] = (pin.Bytes, pin.Count - 1);
                }

                (unpin ??= []).Add(pin.Bytes);
            }
        }

        // Outside the lock: the last unpin of a freed object gives its range back to the allocator.
        unpin?.ForEach(bytes => bytes.Unpin());
    }

    public int PinCount
    {
        get
        {
            lock (_gate)
            {
                return _pins.Values.Sum(pin => pin.Count);
            }
        }
    }

    public bool TryAddCreate(ObjectId handle, PendingCreate create)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _creates.Add(handle, create);
            return true;
        }
    }

    /// <summary>Takes a pending create to seal or abort it; null when the handle is unknown, used or expired.</summary>
    public PendingCreate? TakeCreate(ObjectId handle)
    {
        lock (_gate)
        {
            return _creates.Remove(handle, out var create) ? create : null;
        }
    }

    /// <summary>Records a get ticket whose object the caller already pinned; false once the session ended (the caller unpins).</summary>
    public bool TryAddRead(ObjectId ticket, PendingRead read)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _reads.Add(ticket, read);
            return true;
        }
    }

    /// <summary>Takes a get ticket to use it (the caller unpins when done); null when unknown, used or expired.</summary>
    public PendingRead? TakeRead(ObjectId ticket)
    {
        lock (_gate)
        {
            return _reads.Remove(ticket, out var read) ? read : null;
        }
    }

    /// <summary>Drops creates nobody sealed and tickets nobody used in time; returns how many.</summary>
    public int Expire(long nowMillis)
    {
        List<StoredBytes>? expired = null;
        lock (_gate)
        {
            if (_creates.Count == 0 && _reads.Count == 0)
            {
                return 0;
            }

            foreach (var (handle, create) in _creates)
            {
                if (create.ExpiresAtMillis < nowMillis)
                {
                    (expired ??= []).Add(create.Bytes);
                    _creates.Remove(handle);
                }
            }

            foreach (var (ticket, read) in _reads)
            {
                if (read.ExpiresAtMillis < nowMillis)
                {
                    (expired ??= []).Add(read.Object.Bytes);
                    _reads.Remove(ticket);
                }
            }
        }

        // A create holds its bytes' own count, a read a pin: either way one drop gives it back.
        expired?.ForEach(bytes => bytes.Unpin());
        return expired?.Count ?? 0;
    }

    /// <summary>The session ended: every pin and every pending create is given back, and no new one is taken.</summary>
    public void Close()
    {
        List<StoredBytes> release = [];
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            foreach (var pin in _pins.Values)
            {
                for (var i = 0; i < pin.Count; i++)
                {
                    release.Add(pin.Bytes);
                }
            }

            release.AddRange(_creates.Values.Select(create => create.Bytes));
            release.AddRange(_reads.Values.Select(read => read.Object.Bytes));
            _pins.Clear();
            _creates.Clear();
            _reads.Clear();
        }

        // A pin, a create and a get ticket each hold one count; either way one drop gives it back.
        release.ForEach(bytes => bytes.Unpin());
    }
}
