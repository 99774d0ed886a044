using System.Diagnostics;
using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Load;

/// <summary>
/// One session of the load run: a random mix of put, register, fetch, get and unregister on keys of
/// its own, all objects owned by the shared holder. It keeps its own model of what it registered, so
/// every fetch and unregister checks that no registration was lost, and every get checks the bytes.
/// </summary>
internal sealed class LoadSession(int index, RaySharingClient client, ObjectHolder holder, Random random)
{
    private const int Keys = 4;
    private const int MinSize = 100;
    private const int MaxSize = 256 << 10;

    private static readonly TimeSpan CallBound = TimeSpan.FromSeconds(20);

    /// <summary>What this session registered under each of its keys, in order, with the borrow from each put.</summary>
    private readonly Dictionary<string, List<Entry>> _registered = [];

    /// <summary>Keys a failed call left in an unknown state: not checked again until unregistered.</summary>
    private readonly HashSet<string> _uncertain = [];

    public LoadTally Tally { get; } = new();

    public async Task RunAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration && !cancellationToken.IsCancellationRequested)
        {
            var key = $"s{index}-k{random.Next(Keys)}";
            var entries = _registered.GetValueOrDefault(key);
            var roll = random.Next(100);
            if (roll < 40 || entries is null || entries.Count == 0)
            {
                await PutAndRegisterAsync(key, cancellationToken).ConfigureAwait(false);
            }
            else if (roll < 60)
            {
                await FetchAsync(key, entries, cancellationToken).ConfigureAwait(false);
            }
            else if (roll < 90)
            {
                await GetAsync(entries[random.Next(entries.Count)], cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await UnregisterAsync(key, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Unregisters every key this session used and releases its borrows.</summary>
    public async Task CleanUpAsync(CancellationToken cancellationToken)
    {
        foreach (var key in _registered.Keys.Union(_uncertain).ToList())
        {
            await UnregisterAsync(key, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PutAndRegisterAsync(string key, CancellationToken cancellationToken)
    {
        var data = new byte[random.Next(MinSize, MaxSize + 1)];
        random.NextBytes(data);
        var crc = Payload.Crc(data);
        var (putOk, objectRef) = await CallAsync(LoadOp.Put, key, token => client.PutAsync(data, holder, token), cancellationToken).ConfigureAwait(false);
        if (!putOk)
        {
            return;
        }

        if (!_registered.TryGetValue(key, out var entries))
        {
            entries = [];
            _registered[key] = entries;
        }

        var (registered, count) = await CallAsync(LoadOp.Register, key, token => holder.RegisterAsync(key, [objectRef!], token), cancellationToken).ConfigureAwait(false);
        if (!registered)
        {
            _uncertain.Add(key);
            await ReleaseAsync(key, [objectRef!], cancellationToken).ConfigureAwait(false);
            return;
        }

        entries.Add(new Entry(objectRef!, crc));
        if (!_uncertain.Contains(key) && count != entries.Count)
        {
            Tally.LostRegistration($"session {index}: after registering under {key} the holder reports {count} refs; this session registered {entries.Count}");
            _uncertain.Add(key);
        }
    }

    private async Task FetchAsync(string key, List<Entry> entries, CancellationToken cancellationToken)
    {
        var (ok, refs) = await CallAsync(LoadOp.Fetch, key, token => holder.FetchAsync(key, token), cancellationToken).ConfigureAwait(false);
        if (!ok)
        {
            return;
        }

        if (!_uncertain.Contains(key) && !refs!.Select(r => r.Id).SequenceEqual(entries.Select(e => e.Ref.Id)))
        {
            Tally.LostRegistration($"session {index}: fetch of {key} returned {refs!.Count} refs that are not, in order, the {entries.Count} this session registered");
        }

        await ReleaseAsync(key, refs!, cancellationToken).ConfigureAwait(false);
    }

    private async Task GetAsync(Entry entry, CancellationToken cancellationToken)
    {
        var (ok, bytes) = await CallAsync(LoadOp.Get, entry.Ref.Id.ToString(), token => client.GetBytesAsync(entry.Ref, token), cancellationToken).ConfigureAwait(false);
        if (ok && Payload.Crc(bytes!) != entry.Crc)
        {
            Tally.WrongBytes($"session {index}: object {entry.Ref.Id} read crc {Payload.Hex(Payload.Crc(bytes!))}, put {Payload.Hex(entry.Crc)}");
        }
    }

    private async Task UnregisterAsync(string key, CancellationToken cancellationToken)
    {
        var (ok, removed) = await CallAsync(LoadOp.Unregister, key, token => holder.UnregisterAsync(key, token), cancellationToken).ConfigureAwait(false);
        if (!ok)
        {
            return;
        }

        var entries = _registered.GetValueOrDefault(key) ?? [];
        if (!_uncertain.Contains(key) && removed != entries.Count)
        {
            Tally.LostRegistration($"session {index}: unregistering {key} removed {removed} refs; this session registered {entries.Count}");
        }

        // The key is gone: the puts' borrows are all that keep these objects alive now.
        await ReleaseAsync(key, [.. entries.Select(e => e.Ref)], cancellationToken).ConfigureAwait(false);
        _registered.Remove(key);
        _uncertain.Remove(key);
    }

    private async Task ReleaseAsync(string key, IReadOnlyList<ObjectRef> refs, CancellationToken cancellationToken) =>
        await CallAsync(LoadOp.Release, key, async token =>
        {
            await client.ReleaseAsync(refs, token).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>One bounded, timed call; a failure is counted and reported as (false, default).</summary>
    private async Task<(bool Ok, T? Result)> CallAsync<T>(LoadOp op, string target, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();
        try
        {
            var result = await BoundedCall.RunAsync(op.ToString(), CallBound, call, cancellationToken).ConfigureAwait(false);
            Tally.Succeeded(op, started.Elapsed);
            return (true, result);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Tally.Failed(op, Outcome.Of(ex), $"session {index} {target}");
            return (false, default);
        }
    }

    private sealed record Entry(ObjectRef Ref, uint Crc);
}
