using RaySharing.Protocol;

namespace RaySharing.Worker.Ownership;

/// <summary>Who this worker instance is: a fresh id per start, and the address others reach it at.</summary>
internal sealed class WorkerIdentity
{
    private string _address = string.Empty;

    public ObjectId WorkerId { get; } = ObjectId.NewId();

    /// <summary>Set once the server has bound its port (which may have been 0).</summary>
    public string Address
    {
        get => _address;
        set => _address = value;
    }

    public WorkerLocation Location => new(_address, WorkerId);
}
