using RaySharing.Wire;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// What the worker remembers of things that are gone, so that a later envelope naming them gets the
/// answer of ERRORS.md's precedence table: objects freed by reference counting (with the owner they had,
/// so an envelope naming another owner is told apart from a genuine one, and a later death of that owner
/// is seen) and owners that died (found by incarnation). Each kind keeps up to a fixed number of entries,
/// forgetting the oldest first, so memory stays bounded however many come and go. A forgotten object or
/// owner is reported as not found, still a typed error. Thread-safe; its lock is the innermost of all.
/// </summary>
internal sealed class Tombstones(int capacity)
{
    private readonly Lock _gate = new();
    private readonly Bounded<ObjectId, OwnerState> _freed = new(capacity);
    private readonly Bounded<ObjectId, OwnerState> _deadOwners = new(capacity);

    /// <summary>Remembers that an object was freed by reference counting.</summary>
    public void ObjectFreed(ObjectId id, OwnerState owner)
    {
        lock (_gate)
        {
            _freed.Add(id, owner);
        }
    }

    /// <summary>The owner a freed object had, if the worker still remembers the object.</summary>
    public bool TryGetFreed(ObjectId id, out OwnerState owner)
    {
        lock (_gate)
        {
            return _freed.TryGet(id, out owner);
        }
    }

    /// <summary>Remembers that an owner (holder incarnation or session) died; its <see cref="OwnerState.DeathReason"/> says why.</summary>
    public void OwnerDied(OwnerState owner)
    {
        lock (_gate)
        {
            _deadOwners.Add(owner.AsOwner.Incarnation, owner);
        }
    }

    /// <summary>The dead owner that is exactly <paramref name="owner"/> (kind, namespace, name and incarnation), if remembered.</summary>
    public bool TryGetDeadOwner(in ObjectOwner owner, out OwnerState dead)
    {
        lock (_gate)
        {
            return _deadOwners.TryGet(owner.Incarnation, out dead) && dead.AsOwner == owner;
        }
    }

    /// <summary>A map that forgets its oldest entries beyond a capacity.</summary>
    private sealed class Bounded<TKey, TValue>(int capacity)
        where TKey : notnull
    {
        private readonly Dictionary<TKey, TValue> _values = [];
        private readonly Queue<TKey> _order = new();

        public void Add(TKey key, TValue value)
        {
            if (capacity == 0 || !_values.TryAdd(key, value))
            {
                return;
            }

            _order.Enqueue(key);
            while (_order.Count > capacity)
            {
                _values.Remove(_order.Dequeue());
            }
        }

        public bool TryGet(TKey key, out TValue value) => _values.TryGetValue(key, out value!);
    }
}
