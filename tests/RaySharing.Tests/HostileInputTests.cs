using CsCheck;
using Grpc.Core;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Property-based barrages of random and mutated requests at a real worker: every call ends within its
/// bound with a status (a typed reason wherever an envelope was involved), the worker never crashes, and
/// other sessions are unaffected.
/// </summary>
public sealed class HostileInputTests
{
    private static readonly HashSet<string> EnvelopeReasons =
        ["INVALID_ENVELOPE", "OWNER_DIED", "WRONG_WORKER", "OBJECT_FREED", "OBJECT_NOT_FOUND", "NOT_OWNER", "OBJECT_TOO_LARGE", "INVALID_REQUEST"];

    /// <summary>The reasons a request's content can earn, with the status ERRORS.md gives each.</summary>
    private static readonly Dictionary<string, StatusCode> ReasonStatus = new()
    {
        ["INVALID_REQUEST"] = StatusCode.InvalidArgument,
        ["INVALID_ENVELOPE"] = StatusCode.InvalidArgument,
        ["NOT_OWNER"] = StatusCode.InvalidArgument,
        ["OWNER_DIED"] = StatusCode.FailedPrecondition,
        ["WRONG_WORKER"] = StatusCode.FailedPrecondition,
        ["HOLDER_NOT_FOUND"] = StatusCode.NotFound,
        ["KEY_NOT_FOUND"] = StatusCode.NotFound,
        ["OBJECT_NOT_FOUND"] = StatusCode.NotFound,
        ["OBJECT_FREED"] = StatusCode.NotFound,
        ["CHECKSUM_MISMATCH"] = StatusCode.DataLoss,
        ["OBJECT_TOO_LARGE"] = StatusCode.ResourceExhausted,
        ["STORE_FULL"] = StatusCode.ResourceExhausted,
        ["LIST_CHANGED"] = StatusCode.Aborted,
    };

    private static readonly (string Service, string Method)[] Methods =
    [
        ("raysharing.v1.Objects", "Get"), ("raysharing.v1.Objects", "Borrow"), ("raysharing.v1.Objects", "Release"),
        ("raysharing.v1.Objects", "Put"), ("raysharing.v1.Holders", "Register"), ("raysharing.v1.Holders", "Fetch"),
        ("raysharing.v1.Holders", "GetOrCreate"), ("raysharing.v1.Holders", "Kill"), ("raysharing.v1.Holders", "Unregister"),
    ];

    [Fact]
    public async Task ObjectCalls_MutatedEnvelopes_TypedErrorsAndNothingChanges()
    {
        await using var worker = await TestWorker.StartAsync();
        var attacker = await worker.ConnectAsync();
        var bystander = await worker.ConnectAsync();
        var holder = await bystander.GetOrCreateHolderAsync("H").Within();
        var victim = await bystander.PutAsync(new byte[5000], holder).Within();
        await holder.RegisterAsync("k", [victim]).Within();
        var before = await bystander.GetStoreStatsAsync().Within();
        var envelope = victim.ToEnvelopeBytes();
        using var wire = new RawWire(worker.Address);
        var unexpected = new List<string>();

        var mutated = Gen.Select(Gen.Int[0, envelope.Length - 1], Gen.Byte[1, 255], Gen.Int[0, 2], Gen.Int[0, 1])
            .Select(t =>
            {
                var (at, mask, how, method) = t;
                byte[] bytes = how switch
                {
                    0 => [.. envelope[..at], (byte)(envelope[at] ^ mask), .. envelope[(at + 1)..]],
                    1 => envelope[..at],
                    _ => [.. envelope[..at], mask, .. envelope[at..]],
                };
                return (Bytes: bytes, Method: method == 0 ? "Get" : "Borrow");
            });
        await mutated.SampleAsync(async input =>
        {
            var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", input.Method, RawWire.Field(1, input.Bytes), attacker.SessionToken);
            if (status != StatusCode.OK && (reason is null || !EnvelopeReasons.Contains(reason)))
            {
                lock (unexpected)
                {
                    unexpected.Add($"{input.Method} {Convert.ToHexString(input.Bytes)} -> {status} {reason}");
                }
            }
        }, iter: 1500, threads: 4);

        Assert.Empty(unexpected);
        await attacker.DisposeAsync().Within();
        var after = await bystander.GetStoreStatsAsync().Within();
        Assert.Equal(before.UsedBytes, after.UsedBytes);
        Assert.Equal(before.Objects, after.Objects);
        Assert.Equal(5000, (await bystander.GetAsync(victim).Within()).Length);
    }

    [Fact]
    public async Task AnyCall_RandomProtobufBodies_EveryCallEndsAndWorkerKeepsServing()
    {
        await using var worker = await TestWorker.StartAsync();
        var attacker = await worker.ConnectAsync();
        var bystander = await worker.ConnectAsync();
        var holder = await bystander.GetOrCreateHolderAsync("H").Within();
        var victim = await bystander.PutAsync("still here", holder).Within();
        await holder.RegisterAsync("k", [victim]).Within();
        using var wire = new RawWire(worker.Address);
        var ended = 0;
        var unexpected = new List<string>();

        await Gen.Select(Gen.Int[0, Methods.Length - 1], Gen.Byte.Array[0, 300]).SampleAsync(async input =>
        {
            var (service, method) = Methods[input.Item1];
            // RawWire bounds the call; reaching the next line means the worker answered in time.
            var (status, reason) = await wire.CallAsync(service, method, input.Item2, attacker.SessionToken);
            Interlocked.Increment(ref ended);
            // Every failure is a documented reason with its documented status: never a bare UNKNOWN.
            if (status != StatusCode.OK && (reason is null || !ReasonStatus.TryGetValue(reason, out var expected) || expected != status))
            {
                lock (unexpected)
                {
                    unexpected.Add($"{service}/{method} {Convert.ToHexString(input.Item2)} -> {status} {reason}");
                }
            }
        }, iter: 1500, threads: 4);

        Assert.Equal(1500, ended);
        Assert.Empty(unexpected);
        Assert.Equal("still here", await bystander.GetAsync(victim).Within());
        Assert.Equal(["k"], await holder.ListKeysAsync().Within());
    }
}
