namespace RaySharing;

/// <summary>
/// The worker ended the client's session (it restarted, or the lease lapsed while this process could not renew
/// it) and the client opened a new one. Refs and holders obtained before fail typed from now on: an object owned
/// by the ended session, or by a holder of a restarted worker, is gone.
/// </summary>
public sealed class SessionReplacedEventArgs(SessionId previousSessionId, SessionId sessionId, WorkerId previousWorkerId, WorkerId workerId) : EventArgs
{
    /// <summary>The session that ended.</summary>
    public SessionId PreviousSessionId { get; } = previousSessionId;

    /// <summary>The new session, now <see cref="RaySharingClient.SessionId"/>.</summary>
    public SessionId SessionId { get; } = sessionId;

    /// <summary>The worker instance the ended session was on.</summary>
    public WorkerId PreviousWorkerId { get; } = previousWorkerId;

    /// <summary>The worker instance the new session is on.</summary>
    public WorkerId WorkerId { get; } = workerId;

    /// <summary>True when the worker instance changed: it restarted, and everything it held before is gone.</summary>
    public bool WorkerRestarted => PreviousWorkerId != WorkerId;
}
