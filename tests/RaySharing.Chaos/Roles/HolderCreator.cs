using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Roles;

/// <summary>
/// Creates a SESSION-lifetime holder, puts an object owned by it, registers it, announces its
/// envelope and then waits to be killed: when this process dies, the holder and its object must die
/// with its session, and refs to them must fail with <see cref="OwnerDiedException"/>.
/// </summary>
internal static class HolderCreator
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        var order = PutOrder.Parse(commandLine);
        using var timeout = new CancellationTokenSource(ChildRole.CallBound * 3);
        // Not disposed on purpose: this session must end only by being killed, as a crashed process's would.
        var client = await RaySharingClient.ConnectAsync(ChildRole.ClientOptions(order.Address, "chaos-holder-creator", order.Path), timeout.Token);
        var holder = await client.GetOrCreateHolderAsync(order.HolderName, HolderLifetime.Session, cancellationToken: timeout.Token);
        var objectRef = await client.PutAsync(order.Data, holder, timeout.Token);
        await holder.RegisterAsync(order.Key, [objectRef], timeout.Token);
        ChildLines.Say($"{ChildLines.Ready} {Convert.ToHexString(objectRef.ToEnvelopeBytes())} {Payload.Hex(order.Crc)}");

        // Until killed (or until the harness goes away: see ChildRole.ExitWithParent).
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
