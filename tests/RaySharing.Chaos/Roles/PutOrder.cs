using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Roles;

/// <summary>What an executor or a holder creator is told to put, read from its command line, with its bytes built.</summary>
internal sealed record PutOrder(Uri Address, string HolderName, string Key, int Size, byte[] Data, uint Crc, ChildPath Path)
{
    public static PutOrder Parse(CommandLine commandLine)
    {
        commandLine.Allow("--address", "--holder", "--key", "--size", "--seed", "--path");
        var address = commandLine.Address();
        var holderName = commandLine.Required("--holder");
        var key = commandLine.Required("--key");
        var size = commandLine.Int("--size", null, 0, 64 << 20);
        var seed = commandLine.Int("--seed", null, int.MinValue, int.MaxValue);
        // Built before connecting, so that once connected a role does nothing but its calls.
        var data = Payload.Build(size, seed);
        return new PutOrder(address, holderName, key, size, data, Payload.Crc(data), ChildRole.Path(commandLine));
    }
}
