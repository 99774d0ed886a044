using System.Diagnostics;
using RaySharing.Internal;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class DeadlineBucketsTests
{
    [Fact]
    public async Task TokenFor_FiresNeverEarly()
    {
        using var buckets = new DeadlineBuckets();
        var timeout = TimeSpan.FromMilliseconds(300);
        var clock = Stopwatch.StartNew();
        var token = buckets.TokenFor(timeout);
        var fired = new TaskCompletionSource<TimeSpan>();
        token.Register(() => fired.TrySetResult(clock.Elapsed));

        // How late it fires depends on how busy the machine is, so only "never early" is asserted; the bound
        // catches a token that never fires.
        var elapsed = await fired.Task.Within(timeout + TimeSpan.FromSeconds(10));

        Assert.True(elapsed >= timeout, $"fired early, at {elapsed}");
    }

    [Fact]
    public void TokenFor_CallsDueInTheSameSlot_ShareOneToken()
    {
        using var buckets = new DeadlineBuckets();
        var clock = Stopwatch.StartNew();

        var tokens = Enumerable.Range(0, 100).Select(_ => buckets.TokenFor(TimeSpan.FromMinutes(1))).Distinct().Count();

        // 100 calls fall into the 50 ms slots the loop spanned: one or two on an idle machine, a few more
        // if the loop was descheduled, never one per call.
        var slotsSpanned = (int)(clock.Elapsed.TotalMilliseconds / 50) + 2;
        Assert.InRange(tokens, 1, slotsSpanned);
    }
}
