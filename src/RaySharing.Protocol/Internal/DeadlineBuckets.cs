using System.Collections.Concurrent;
using System.Diagnostics;

namespace RaySharing.Internal;

/// <summary>
/// Call deadlines rounded up to the next 50 ms: every call due in the same slot shares one cancellation
/// token, and one timer cancels the slots that come due. A deadline fires at most one slot late, never early.
/// </summary>
internal sealed class DeadlineBuckets : IDisposable
{
    private static readonly TimeSpan Slot = TimeSpan.FromMilliseconds(50);
    private static readonly long SlotTicks = (long)(Slot.TotalSeconds * Stopwatch.Frequency);

    private readonly ConcurrentDictionary<long, CancellationTokenSource> _slots = new();
    private readonly Timer _timer;

    public DeadlineBuckets()
    {
        _timer = new Timer(static state => ((DeadlineBuckets)state!).CancelDue(), this, Slot, Slot);
    }

    /// <summary>A token cancelled no sooner than <paramref name="timeout"/> from now, and at most one slot later.</summary>
    public CancellationToken TokenFor(TimeSpan timeout)
    {
        var due = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var slot = (due / SlotTicks) + 1;
        return _slots.TryGetValue(slot, out var existing)
            ? existing.Token
            : _slots.GetOrAdd(slot, static _ => new CancellationTokenSource()).Token;
    }

    /// <summary>Stops the timer. Calls still in flight end with the channel that carries them, not as timeouts.</summary>
    public void Dispose()
    {
        _timer.Dispose();
        _slots.Clear();
    }

    private void CancelDue()
    {
        var now = Stopwatch.GetTimestamp() / SlotTicks;
        foreach (var (slot, source) in _slots)
        {
            // Removed before cancelled, so a caller never receives a token that is already cancelled
            // unless its own deadline has passed; the sources have no timer and need no disposal.
            if (slot <= now && _slots.TryRemove(slot, out _))
            {
                source.Cancel();
            }
        }
    }
}
