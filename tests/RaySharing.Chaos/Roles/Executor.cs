namespace RaySharing.Chaos.Roles;

/// <summary>
/// Puts one object owned by the harness's detached holder, registers it under the round's job key,
/// announces it and exits: the object must outlive this process.
/// </summary>
internal static class Executor
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        // Parsed and built before connecting, so "PUTTING" is followed by the put alone: the harness aims its kill at it.
        var order = PutOrder.Parse(commandLine);

        using var timeout = new CancellationTokenSource(ChildRole.CallBound * 3);
        var client = await RaySharingClient.ConnectAsync(ChildRole.ClientOptions(order.Address, "chaos-executor", order.Path), timeout.Token);
        try
        {
            var holder = await client.GetHolderAsync(order.HolderName, cancellationToken: timeout.Token);
            ChildLines.Say($"{ChildLines.Putting} {order.Size}");
            var objectRef = await client.PutAsync(order.Data, holder, timeout.Token);
            ChildLines.Say($"{ChildLines.Put} {objectRef.Id}");
            await holder.RegisterAsync(order.Key, [objectRef], timeout.Token);
            ChildLines.Say(ChildLines.ExecutorReady(objectRef, order.Crc));
            return 0;
        }
        finally
        {
            // Ending the session drops this process's borrow; the registration keeps the object alive.
            await ChildRole.DisposeClientAsync(client);
        }
    }
}
