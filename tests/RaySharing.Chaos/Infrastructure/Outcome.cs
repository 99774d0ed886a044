using Grpc.Core;
using RaySharing.Testing;

namespace RaySharing.Chaos.Infrastructure;

/// <summary>How one call ended, in the categories the harness counts.</summary>
internal enum OutcomeKind
{
    /// <summary>It returned, with the exact bytes where bytes were expected.</summary>
    Ok,

    /// <summary>It failed with one of the library's specific exception types.</summary>
    Typed,

    /// <summary>It returned bytes whose checksum is not the putter's.</summary>
    Wrong,

    /// <summary>It did not finish within the harness's bound.</summary>
    Hang,

    /// <summary>It failed with anything else: a raw transport error, the bare base type, a bug.</summary>
    Untyped,
}

/// <summary>
/// An outcome and its name: an exception type name for typed errors, <c>HANG</c>, or for untyped
/// failures a signature such as <c>RaySharingException(INTERNAL)&lt;-ObjectDisposedException</c>
/// (type, reason or status, root cause). Names never contain spaces, so children print them as one token.
/// </summary>
internal readonly record struct Outcome(OutcomeKind Kind, string Name, string Detail = "")
{
    /// <summary>What a child prints for a call that hit its bound.</summary>
    public const string HangName = "HANG";

    private const string UntypedPrefix = "UNTYPED:";

    /// <summary>The names of the library's specific exception types: every subclass of the base, and the timeout.</summary>
    private static readonly HashSet<string> TypedNames = typeof(RaySharingException).Assembly.GetTypes()
        .Where(t => t.IsPublic && t.IsSubclassOf(typeof(RaySharingException)))
        .Select(t => t.Name)
        .Append(nameof(RaySharingTimeoutException))
        .ToHashSet(StringComparer.Ordinal);

    public static Outcome Ok { get; } = new(OutcomeKind.Ok, "OK");

    public bool IsOk => Kind == OutcomeKind.Ok;

    /// <summary>The single token a child prints for this outcome.</summary>
    public string Token => Kind == OutcomeKind.Untyped ? UntypedPrefix + Name : Name;

    public static Outcome Wrong(string detail) => new(OutcomeKind.Wrong, "WRONG", detail);

    /// <summary>The same outcome, named as a client disposal's, so disposal failures are told apart from calls'.</summary>
    public Outcome OfDisposal() => Kind == OutcomeKind.Untyped ? this with { Name = "DisposeAsync:" + Name } : this;

    public static Outcome Of(Exception exception) => exception switch
    {
        BoundExceededException => new(OutcomeKind.Hang, HangName, exception.Message),
        // Every token the harness and its children pass is one of their own bounds: cancellation is a bound hit.
        OperationCanceledException => new(OutcomeKind.Hang, HangName, exception.Message),
        RaySharingTimeoutException => new(OutcomeKind.Typed, nameof(RaySharingTimeoutException)),
        // The bare base type is the client's fallback for a status it could not map: not a kind a caller can act on.
        RaySharingException typed when typed.GetType() != typeof(RaySharingException) => new(OutcomeKind.Typed, typed.GetType().Name),
        _ => new(OutcomeKind.Untyped, Signature(exception), OneLine(exception.Message)),
    };

    /// <summary>Reads a token a child printed (see <see cref="Token"/>).</summary>
    public static Outcome FromPrinted(string token, string detail = "") =>
        token == HangName ? new(OutcomeKind.Hang, HangName, detail)
        : TypedNames.Contains(token) ? new(OutcomeKind.Typed, token, detail)
        : new(OutcomeKind.Untyped, token.StartsWith(UntypedPrefix, StringComparison.Ordinal) ? token[UntypedPrefix.Length..] : token, detail);

    public override string ToString() => Detail.Length == 0 ? Name : $"{Name} ({Detail})";

    /// <summary>Type, reason or status, and root cause: enough to recognise one failure among many.</summary>
    private static string Signature(Exception exception)
    {
        var what = exception switch
        {
            RaySharingException bare => $"{nameof(RaySharingException)}({bare.Reason})",
            RpcException rpc => $"{nameof(RpcException)}({rpc.StatusCode})",
            _ => exception.GetType().Name,
        };
        var rpcInside = exception as RpcException ?? exception.InnerException as RpcException;
        var cause = rpcInside?.Status.DebugException ?? (rpcInside is null ? exception.InnerException : null);
        return cause is null ? what : $"{what}<-{cause.GetType().Name}";
    }

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ");
        return line.Length <= 300 ? line : line[..300] + "…";
    }
}
