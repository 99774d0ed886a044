namespace RaySharing;

/// <summary>
/// A ref registered with a holder whose object is lost: the worker of the cluster that stored its bytes died while
/// the holder lives (<see cref="ObjectHolder.GetLostRefsAsync"/>). Gets of it fail with <see cref="ObjectLostException"/>.
/// </summary>
/// <param name="Key">The registry key it is registered under.</param>
/// <param name="Index">Its index in that key's list.</param>
/// <param name="ObjectId">The lost object's id.</param>
/// <param name="WorkerAddress">The address of the worker that stored it and died.</param>
/// <param name="WorkerId">The id of that worker.</param>
public sealed record LostRef(string Key, int Index, ObjectId ObjectId, string WorkerAddress, WorkerId WorkerId);
