using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Roles;

/// <summary>
/// Fetches the job's refs from the holder and gets every one, reporting each outcome on its own
/// line. It never gives up early: after a failure it goes on to the next ref, so the harness sees
/// how every get ended, and it always ends with DONE.
/// </summary>
internal static class Driver
{
    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        commandLine.Allow("--address", "--holder", "--key", "--path");
        var path = ChildRole.Path(commandLine);
        var address = commandLine.Address();
        var holderName = commandLine.Required("--holder");
        var key = commandLine.Required("--key");

        RaySharingClient? client = null;
        try
        {
            IReadOnlyList<ObjectRef> refs;
            try
            {
                client = await BoundedCall.RunAsync("connect", ChildRole.CallBound,
                    token => RaySharingClient.ConnectAsync(ChildRole.ClientOptions(address, "chaos-driver", path), token), CancellationToken.None);
                var holder = await BoundedCall.RunAsync("get holder", ChildRole.CallBound,
                    token => client.GetHolderAsync(holderName, cancellationToken: token), CancellationToken.None);
                refs = await BoundedCall.RunAsync("fetch", ChildRole.CallBound, token => holder.FetchAsync(key, token), CancellationToken.None);
            }
            catch (Exception ex)
            {
                ChildLines.Say($"{ChildLines.Err} {ChildLines.FetchTarget} {Outcome.Of(ex).Token}");
                ChildLines.Say(ChildLines.Done);
                return 0;
            }

            ChildLines.Say($"{ChildLines.Fetched} {refs.Count}");
            foreach (var objectRef in refs)
            {
                try
                {
                    var bytes = await BoundedCall.RunAsync("get", ChildRole.CallBound, token => client.GetBytesAsync(objectRef, token), CancellationToken.None);
                    ChildLines.Say($"{ChildLines.Ok} {objectRef.Id} {Payload.Hex(Payload.Crc(bytes))}");
                }
                catch (Exception ex)
                {
                    ChildLines.Say($"{ChildLines.Err} {objectRef.Id} {Outcome.Of(ex).Token}");
                }
            }

            try
            {
                await BoundedCall.RunAsync("release", ChildRole.CallBound, token => client.ReleaseAsync(refs, token), CancellationToken.None);
            }
            catch (Exception ex)
            {
                ChildLines.Say($"{ChildLines.Err} {ChildLines.ReleaseTarget} {Outcome.Of(ex).Token}");
            }

            ChildLines.Say(ChildLines.Done);
            return 0;
        }
        finally
        {
            if (client is not null)
            {
                await ChildRole.DisposeClientAsync(client);
            }
        }
    }
}
