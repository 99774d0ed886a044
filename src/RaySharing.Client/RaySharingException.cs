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

/// <summary>
/// A call or stream did not complete within its deadline or idle timeout. Reason <c>TIMEOUT</c>. Says what
/// timed out (<see cref="Operation"/>, the object or holder it was about) and whether the request reached
/// the worker (<see cref="RequestSent"/>), so a caller can tell whether the operation may have taken effect.
/// </summary>
public sealed class RaySharingTimeoutException : TimeoutException
{
    /// <summary>Creates the exception with a message only; the context properties are empty.</summary>
    public RaySharingTimeoutException(string message, Exception? innerException = null)
        : this(message, operation: string.Empty, address: string.Empty, timeout: TimeSpan.Zero, requestSent: null, objectId: null, holderNamespace: null, holderName: null, innerException)
    {
    }

    /// <summary>Creates the exception with its context.</summary>
    public RaySharingTimeoutException(
        string message,
        string operation,
        string address,
        TimeSpan timeout,
        bool? requestSent,
        ObjectId? objectId,
        string? holderNamespace,
        string? holderName,
        Exception? innerException = null)
        : base(message, innerException)
    {
        Operation = operation;
        Address = address;
        Timeout = timeout;
        RequestSent = requestSent;
        ObjectId = objectId;
        HolderNamespace = holderNamespace;
        HolderName = holderName;
    }

    /// <summary>The operation that timed out, for example <c>Put</c>, <c>GetStream</c>, <c>Fetch</c>, <c>Connect</c>.</summary>
    public string Operation { get; }

    /// <summary>The worker address the call went to.</summary>
    public string Address { get; }

    /// <summary>The bound that passed: <c>CallTimeout</c> for unary calls, <c>StreamIdleTimeout</c> for streams; zero when unknown.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Whether the request reached the worker. True: it did (the worker began to answer, or a stream was under
    /// way), so the operation may have taken effect (a put may have stored its object). False: it never left
    /// this process. Null: it was sent but no answer came, so whether the worker acted on it is unknown.
    /// </summary>
    public bool? RequestSent { get; }

    /// <summary>The object the call was about, when it was about one.</summary>
    public ObjectId? ObjectId { get; }

    /// <summary>The namespace of the holder the call was about, when it was about one.</summary>
    public string? HolderNamespace { get; }

    /// <summary>The name of the holder the call was about, when it was about one.</summary>
    public string? HolderName { get; }

    /// <summary>Always <c>TIMEOUT</c>.</summary>
    public string Reason => "TIMEOUT";

    /// <summary>Always true: the worker may answer a later call.</summary>
    public bool IsTransient => true;
}
