namespace RaySharing;

/// <summary>
/// The base of every RaySharing error except timeouts, which derive from <see cref="TimeoutException"/>
/// (see <see cref="RaySharingTimeoutException"/>) so existing timeout handlers catch them.
/// </summary>
public class RaySharingException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="reason">The machine-readable reason, as sent in the <c>rs-reason</c> trailer.</param>
    /// <param name="message">What happened, to what, and what to do.</param>
    /// <param name="innerException">The underlying failure, if any.</param>
    public RaySharingException(string reason, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    /// <summary>The machine-readable reason, for example <c>OWNER_DIED</c>; see the README's error table.</summary>
    public string Reason { get; }

    /// <summary>True when the same call may succeed if tried again later.</summary>
    public virtual bool IsTransient => false;
}

/// <summary>A call or stream did not complete within its deadline or idle timeout. Reason <c>TIMEOUT</c>.</summary>
public sealed class RaySharingTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public RaySharingTimeoutException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    /// <summary>Always <c>TIMEOUT</c>.</summary>
    public string Reason => "TIMEOUT";

    /// <summary>Always true: the worker may answer a later call.</summary>
    public bool IsTransient => true;
}
