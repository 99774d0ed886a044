namespace RaySharing.Wire;

/// <summary>Reference counts whose zero is final: once the count reached it, the thing is gone and no one may take it again.</summary>
internal static class RefCount
{
    /// <summary>Adds one to <paramref name="count"/> unless it is zero (or below); false then.</summary>
    public static bool TryIncrement(ref int count)
    {
        var seen = Volatile.Read(ref count);
        while (seen > 0)
        {
            var before = Interlocked.CompareExchange(ref count, seen + 1, seen);
            if (before == seen)
            {
                return true;
            }

            seen = before;
        }

        return false;
    }
}
