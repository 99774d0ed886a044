using RaySharing.Protocol;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// What the worker remembers of things that are gone, so that a later envelope naming them gets the
/// answer of ERRORS.md's precedence table: objects freed by reference counting (with the owner they had,
/// so an envelope naming another owner is told apart from a genuine one) and owners that died (with why).
/// Each kind keeps up to a fixed number of entries, forgetting the oldest first, so memory stays bounded
/// however many come and go. A forgotten object or owner is reported as not found, still a typed error.
/// </summary>
internal sealed class Tombstones(int capacity)
{
    private readonly Bounded<ObjectId, ObjectOwner> _freed = new(capacity);
    private readonly Bounded<ObjectId, DeadOwner> _deadOwners = new(capacity);

    public int Count => _freed.Count;

    /// <summary>Remembers that an object was freed by reference counting while its owner lived.</summary>
    public void ObjectFreed(ObjectId id, in ObjectOwner owner) => _freed.Add(id, owner);

    /// <summary>The owner a freed object had, if the worker still remembers the object.</summary>
    public bool TryGetFreed(ObjectId id, out ObjectOwner owner) => _freed.TryGet(id, out owner);

    /// <summary>Remembers that an owner (holder incarnation or session) died, and why.</summary>
    public void OwnerDied(in ObjectOwner owner, string why) => _deadOwners.Add(owner.Incarnation, new DeadOwner(owner, why));

    /// <summary>Why the owner died, if exactly this owner (kind, namespace, name and incarnation) is remembered as dead.</summary>
    public bool TryGetDeadOwner(in ObjectOwner owner, out string why)
    {
        if (_deadOwners.TryGet(owner.Incarnation, out var dead) && dead.Owner == owner)
        {
            why = dead.Why;
            return true;
        }

        why = string.Empty;
        return false;
    }

    private readonly record struct DeadOwner(ObjectOwner Owner, string Why);

    /// <summary>A map that forgets its oldest entries beyond a capacity.</summary>
    private sealed class Bounded<TKey, TValue>(int capacity)
        where TKey : notnull
    {
        private readonly Dictionary<TKey, TValue> _values = [];
        private readonly Queue<TKey> _order = new();

        public int Count => _values.Count;

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
