using System.Diagnostics;
using RaySharing.Internal;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class DeadlineBucketsTests
{
    [Fact]
    public async Task TokenFor_FiresNeverEarlyAndAtMostOneSlotLate()
    {
        using var buckets = new DeadlineBuckets();
        var timeout = TimeSpan.FromMilliseconds(300);
        var clock = Stopwatch.StartNew();
        var token = buckets.TokenFor(timeout);
        var fired = new TaskCompletionSource<TimeSpan>();
        token.Register(() => fired.TrySetResult(clock.Elapsed));

        var elapsed = await fired.Task.Within(TimeSpan.FromSeconds(5));

        Assert.True(elapsed >= timeout, $"fired early, at {elapsed}");
        // One 50 ms slot late at most, plus the timer's own jitter on a busy machine.
        Assert.True(elapsed < timeout + TimeSpan.FromMilliseconds(400), $"fired late, at {elapsed}");
    }

    [Fact]
    public void TokenFor_CallsDueInTheSameSlot_ShareOneToken()
    {
        using var buckets = new DeadlineBuckets();

        var tokens = Enumerable.Range(0, 100).Select(_ => buckets.TokenFor(TimeSpan.FromMinutes(1))).Distinct().Count();

        // 100 calls made within a few milliseconds fall into one or two 50 ms slots.
        Assert.InRange(tokens, 1, 2);
    }
}
