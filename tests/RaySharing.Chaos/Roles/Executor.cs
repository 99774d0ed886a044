namespace RaySharing.Chaos.Roles;

/// <summary>
/// Puts one object owned by the harness's detached holder, registers it under the round's job key,
/// announces it and exits: the object must outlive this process.
/// </summary>
internal static class Executor
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        commandLine.Allow("--address", "--holder", "--key", "--size", "--seed");
        var address = commandLine.Address();
        var holderName = commandLine.Required("--holder");
        var key = commandLine.Required("--key");
        var size = commandLine.Int("--size", null, 0, 64 << 20);
        var seed = commandLine.Int("--seed", null, int.MinValue, int.MaxValue);

        // Built before connecting, so "PUTTING" is followed by the put alone: the harness aims its kill at it.
        var data = Infrastructure.Payload.Build(size, seed);
        var crc = Infrastructure.Payload.Crc(data);

        using var timeout = new CancellationTokenSource(ChildRole.CallBound * 3);
        var client = await RaySharingClient.ConnectAsync(ChildRole.ClientOptions(address, "chaos-executor"), timeout.Token);
        try
        {
            var holder = await client.GetHolderAsync(holderName, cancellationToken: timeout.Token);
            ChildLines.Say($"{ChildLines.Putting} {size}");
            var objectRef = await client.PutAsync(data, holder, timeout.Token);
            ChildLines.Say($"{ChildLines.Put} {objectRef.Id}");
            await holder.RegisterAsync(key, [objectRef], timeout.Token);
            ChildLines.Say(ChildLines.ExecutorReady(objectRef, crc));
            return 0;
        }
        finally
        {
            // Ending the session drops this process's borrow; the registration keeps the object alive.
            await ChildRole.DisposeClientAsync(client);
        }
    }
}
