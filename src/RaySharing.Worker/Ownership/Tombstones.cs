namespace RaySharing.Worker.Ownership;

/// <summary>
/// Remembers up to a fixed number of freed objects, forgetting the oldest first, so that memory stays
/// bounded however many objects come and go. A forgotten object is reported as not found, still a typed error.
/// </summary>
internal sealed class Tombstones(int capacity)
{
    private readonly Dictionary<ObjectId, string> _reasons = [];
    private readonly Queue<ObjectId> _order = new();

    public int Count => _reasons.Count;

    public void Add(ObjectId id, string reason)
    {
        if (capacity == 0 || !_reasons.TryAdd(id, reason))
        {
            return;
        }

        _order.Enqueue(id);
        while (_order.Count > capacity)
        {
            _reasons.Remove(_order.Dequeue());
        }
    }

    public bool TryGet(ObjectId id, out string reason) => _reasons.TryGetValue(id, out reason!);
}
