namespace RaySharing;

/// <summary>
/// The ref lives on another worker than the one this client is connected to: its owner and bytes are
/// there, alive as far as this worker knows. Connect a client to <see cref="Address"/> to use it. Reason
/// <c>WRONG_WORKER</c>.
/// </summary>
public sealed class WrongWorkerException : RaySharingException
{
    /// <summary>Creates the exception.</summary>
    public WrongWorkerException(string message, ObjectId? objectId, WorkerId workerId, string address)
        : base("WRONG_WORKER", message)
    {
        ObjectId = objectId;
        WorkerId = workerId;
        Address = address;
    }

    /// <summary>The object the call was about, when it was about one.</summary>
    public ObjectId? ObjectId { get; }

    /// <summary>The id of the worker instance the ref lives on.</summary>
    public WorkerId WorkerId { get; }

    /// <summary>The address of the worker the ref lives on: connect a client there to use the ref.</summary>
    public string Address { get; }
}
