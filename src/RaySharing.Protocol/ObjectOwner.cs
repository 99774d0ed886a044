namespace RaySharing;

/// <summary>
/// Who owns an object. For a holder: its namespace, name and incarnation. For a session: the
/// session's namespace, an empty name, and the session id as the incarnation.
/// </summary>
/// <param name="Kind">Holder or session.</param>
/// <param name="Namespace">The holder's (or session's) namespace.</param>
/// <param name="Name">The holder's name; empty for a session.</param>
/// <param name="Incarnation">The raw 16 bytes of the holder incarnation or of the session id; <see cref="HolderIncarnation"/> and <see cref="SessionId"/> give them typed.</param>
public readonly record struct ObjectOwner(OwnerKind Kind, string Namespace, string Name, ObjectId Incarnation)
{
    /// <summary>The owning holder's incarnation; null when a session owns the object.</summary>
    public HolderIncarnation? HolderIncarnation => Kind == OwnerKind.Holder ? new HolderIncarnation(Incarnation) : null;

    /// <summary>The owning session's id; null when a holder owns the object.</summary>
    public SessionId? SessionId => Kind == OwnerKind.Session ? new SessionId(Incarnation) : null;

    /// <summary>A readable description for messages and logs.</summary>
    public override string ToString() => Kind == OwnerKind.Holder
        ? $"holder '{Namespace}/{Name}' (incarnation {Incarnation})"
        : $"session {Incarnation} (namespace '{Namespace}')";
}
