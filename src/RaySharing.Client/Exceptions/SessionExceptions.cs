namespace RaySharing;

/// <summary>The client's session has ended (closed, or its lease lapsed while the client could not renew it). Reason <c>SESSION_EXPIRED</c>.</summary>
public sealed class SessionExpiredException(string message, ObjectId sessionId) : RaySharingException("SESSION_EXPIRED", message)
{
    /// <summary>The session that ended.</summary>
    public ObjectId SessionId { get; } = sessionId;
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
