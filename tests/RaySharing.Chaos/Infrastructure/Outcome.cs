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

/// <summary>An outcome and its name: an exception type name for typed errors, details for the rest.</summary>
internal readonly record struct Outcome(OutcomeKind Kind, string Name)
{
    /// <summary>What a child prints for a call that hit the harness's bound.</summary>
    public const string HangName = "HANG";

    /// <summary>The names of the library's specific exception types: every sealed subclass of the base, and the timeout.</summary>
    private static readonly HashSet<string> TypedNames = typeof(RaySharingException).Assembly.GetTypes()
        .Where(t => t.IsPublic && t.IsSubclassOf(typeof(RaySharingException)))
        .Select(t => t.Name)
        .Append(nameof(RaySharingTimeoutException))
        .ToHashSet(StringComparer.Ordinal);

    public static Outcome Ok { get; } = new(OutcomeKind.Ok, "OK");

    public static Outcome Wrong(string detail) => new(OutcomeKind.Wrong, detail);

    public bool IsOk => Kind == OutcomeKind.Ok;

    public static Outcome Of(Exception exception) => exception switch
    {
        BoundExceededException => new(OutcomeKind.Hang, HangName),
        RaySharingTimeoutException => new(OutcomeKind.Typed, nameof(RaySharingTimeoutException)),
        // The bare base type is the client's fallback for a status it could not map: not a kind a caller can act on.
        RaySharingException typed when typed.GetType() != typeof(RaySharingException) => new(OutcomeKind.Typed, typed.GetType().Name),
        RaySharingException bare => new(OutcomeKind.Untyped, $"RaySharingException({bare.Reason}): {OneLine(bare.Message)}"),
        _ => new(OutcomeKind.Untyped, $"{exception.GetType().Name}: {OneLine(exception.Message)}"),
    };

    /// <summary>Reads the name a child printed after <c>ERR</c>.</summary>
    public static Outcome FromPrinted(string name) =>
        name == HangName ? new(OutcomeKind.Hang, HangName)
        : TypedNames.Contains(name) ? new(OutcomeKind.Typed, name)
        : new(OutcomeKind.Untyped, name);

    /// <summary>The single token a child prints for this outcome (no spaces, so lines stay parseable).</summary>
    public string Token => Kind switch
    {
        OutcomeKind.Typed or OutcomeKind.Hang => Name,
        _ => "UNTYPED:" + Name.Split(':')[0].Replace(' ', '_'),
    };

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ");
        return line.Length <= 200 ? line : line[..200] + "…";
    }
}

