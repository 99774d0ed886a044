namespace RaySharing;

/// <summary>
/// The session a call ran in has ended on the worker (it restarted, or the lease lapsed while the client could
/// not renew it). Reason <c>SESSION_EXPIRED</c>. The client opens a new session by itself
/// (<see cref="RaySharingClient.SessionReplaced"/>), so the same call made again runs in the new one.
/// </summary>
public sealed class SessionExpiredException(string message, SessionId sessionId) : RaySharingException("SESSION_EXPIRED", message)
{
    /// <summary>The session that ended.</summary>
    public SessionId SessionId { get; } = sessionId;

    /// <summary>True: the client replaces the session, and a new call runs in the new one.</summary>
    public override bool IsTransient => true;
}

/// <summary>The worker could not be reached (nothing listening, connection refused or lost). Reason <c>UNAVAILABLE</c>.</summary>
public sealed class WorkerUnavailableException(string message, string address, Exception? innerException = null) : RaySharingException("UNAVAILABLE", message, innerException)
{
    /// <summary>The worker address tried.</summary>
    public string Address { get; } = address;

    /// <summary>True: the worker may come back.</summary>
    public override bool IsTransient => true;
}

/// <summary>The caller is not allowed to do this. Reason <c>UNAUTHORIZED</c>.</summary>
public sealed class UnauthorizedException(string message) : RaySharingException("UNAUTHORIZED", message);
