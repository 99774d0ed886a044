using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>A put made in place in the arena, between Create and Seal.</summary>
internal sealed record PendingCreate(StoredBytes Bytes, HolderAddress? Owner, ObjectCodec Codec, string TypeName, long ExpiresAtMillis);

/// <summary>
/// What a same-host session holds in the arena: the objects it pinned to read in place, and the objects it
/// is writing in place. Everything here is given back when the session ends, so a client that dies holding
/// a zero-copy lease or half-way through a write leaves nothing behind once its lease lapses.
/// </summary>
/// <remarks>Its lock is a leaf: nothing is locked while holding it but the arena allocator's.</remarks>
internal sealed class ArenaSession
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectId, (StoredBytes Bytes, int Count)> _pins = [];
    private readonly Dictionary<ObjectId, PendingCreate> _creates = [];
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

    /// <summary>Drops creates nobody sealed in time; returns how many.</summary>
    public int ExpireCreates(long nowMillis)
    {
        List<PendingCreate>? expired = null;
        lock (_gate)
        {
            if (_creates.Count == 0)
            {
                return 0;
            }

            foreach (var (handle, create) in _creates)
            {
                if (create.ExpiresAtMillis < nowMillis)
                {
                    (expired ??= []).Add(create);
                    _creates.Remove(handle);
                }
            }
        }

        expired?.ForEach(create => create.Bytes.Free());
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
            _pins.Clear();
            _creates.Clear();
        }

        // A pin and a create each hold one count; either way one drop gives it back.
        release.ForEach(bytes => bytes.Unpin());
    }
}
