using RaySharing.Wire;

namespace RaySharing.Worker.Ownership;

/// <summary>Who this worker instance is: a fresh id per start, and the address others reach it at.</summary>
internal sealed class WorkerIdentity(WorkerOptions options)
{
    private volatile string _address = options.AdvertisedAddress ?? string.Empty;

    public ObjectId WorkerId { get; } = ObjectId.NewId();

    /// <summary>The advertised address, or the bound one once the server has bound its port (which may have been 0); empty before.</summary>
    public string Address
    {
        get => _address;
        set => _address = value;
    }

    public WorkerLocation Location => new(_address, WorkerId);
}
