namespace RaySharing;

/// <summary>What kind of thing owns an object.</summary>
public enum OwnerKind
{
    /// <summary>A named holder; the object outlives the session that put it.</summary>
    Holder = 1,

    /// <summary>The session that put the object; the object dies with that session.</summary>
    Session = 2,
}
